import sqlite3
import time
from pathlib import Path

import pytest

from smallfirst.completions import ModelInfo, Usage
from smallfirst.logs import RequestLog, RequestRecord, migrate, request_cost
from smallfirst.logs.store import WAL_SIZE_LIMIT_BYTES
from tests.helpers import eventually


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    expected = [
        "0001_requests",
        "0002_routing_and_privacy",
        "0003_baseline_cost",
        "0004_cached_tokens",
        "0005_unknown_baselines",
        "0006_latency_order",
    ]
    assert migrate(connection) == expected
    assert migrate(connection) == []
    names = [r[0] for r in connection.execute("SELECT name FROM _migrations")]
    assert names == expected
    columns = {r[1] for r in connection.execute("PRAGMA table_info(requests)")}
    assert {"model_requested", "model_answered", "tier", "ttft_ms", "cost_usd"} <= columns
    assert "cached_tokens" in columns


def test_log_is_wal_and_keeps_every_row(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "log.db")
    for i in range(300):
        log.record(RequestRecord(id=str(i), created_at=i, endpoint="chat", model_requested="m"))
    log.close()
    connection = sqlite3.connect(tmp_path / "log.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT count(*) FROM requests").fetchone()[0] == 300


def test_rows_past_the_retention_are_deleted_and_the_rest_kept(tmp_path: Path) -> None:
    now = time.time()
    log = RequestLog(tmp_path / "log.db")
    for age in ("0", "0.5", "0.99", "1.01", "3"):
        created = now - float(age) * 86400
        log.record(RequestRecord(id=age, created_at=created, endpoint="chat", model_requested="m"))
    log.close()
    RequestLog(tmp_path / "log.db", retention_s=86400).close()  # prunes when it starts
    kept = sqlite3.connect(tmp_path / "log.db").execute("SELECT id FROM requests ORDER BY id")
    assert [row[0] for row in kept] == ["0", "0.5", "0.99"]


def test_the_wal_a_large_prune_grew_is_cut_back_once_written_past(tmp_path: Path) -> None:
    """The -wal file kept every page the prune changed for as long as the gateway ran (a
    37 MB log pruned to a day: a 36 MB requests.db-wal beside it until the gateway stopped)."""
    path = tmp_path / "log.db"
    old = time.time() - 10 * 86400
    log = RequestLog(path)
    for i in range(4000):  # ~2 x the size limit of rows past the retention
        row = RequestRecord(id=str(i), created_at=old, endpoint="chat", model_requested="m")
        log.record(row.model_copy(update={"prompt": "x" * 2000}))
    log.close()
    wal = tmp_path / "log.db-wal"
    log = RequestLog(path, retention_s=86400)  # prunes when it starts
    written = 0

    def wal_cut_back() -> bool:
        nonlocal written
        written += 1  # the WAL is cut when a write begins it again after a checkpoint
        log.record(
            RequestRecord(
                id=f"new{written}", created_at=time.time(), endpoint="chat", model_requested="m"
            )
        )
        return wal.stat().st_size <= WAL_SIZE_LIMIT_BYTES

    try:
        assert eventually(lambda: wal.exists() and wal.stat().st_size > WAL_SIZE_LIMIT_BYTES)
        assert eventually(wal_cut_back)
    finally:
        log.close()


def test_failed_writes_are_retried_and_what_must_be_dropped_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = RequestLog(tmp_path / "log.db")
    log.MAX_WAITING = 2
    saboteur = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER full BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    for i in range(3):
        log.record(RequestRecord(id=str(i), created_at=i, endpoint="chat", model_requested="m"))
    deadline = time.monotonic() + 10
    while "write failed" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "write failed (disk full); 2 rows wait in memory, 1 dropped so far" in caplog.text
    saboteur.execute("DROP TRIGGER full")
    log.close()
    assert log.dropped_rows == 1
    kept = saboteur.execute("SELECT id FROM requests ORDER BY id").fetchall()
    assert [row[0] for row in kept] == ["1", "2"]


def test_a_batch_that_fails_half_way_is_written_once_when_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each row of a batch committed on its own: the rows before the failing one were
    written, and the retry wrote them again (or failed on their ids for good)."""
    log = RequestLog(tmp_path / "log.db")
    saboteur = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER third BEFORE INSERT ON requests WHEN NEW.id = '2'"
        " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    for i in range(3):  # one batch: the writer wakes every FLUSH_INTERVAL_S
        log.record(RequestRecord(id=str(i), created_at=i, endpoint="chat", model_requested="m"))
    deadline = time.monotonic() + 10
    while "write failed" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert saboteur.execute("SELECT count(*) FROM requests").fetchone() == (0,)
    saboteur.execute("DROP TRIGGER third")
    log.close()
    kept = saboteur.execute("SELECT id FROM requests ORDER BY id").fetchall()
    assert [row[0] for row in kept] == ["0", "1", "2"]


def test_a_failed_prune_keeps_the_written_rows_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    RequestLog(tmp_path / "log.db").close()
    saboteur = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER locked BEFORE DELETE ON requests BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    log = RequestLog(tmp_path / "log.db", retention_s=86400)
    for i in range(3):
        log.record(RequestRecord(id=str(i), created_at=i, endpoint="chat", model_requested="m"))
    log.close()
    assert "pruning failed (no)" in caplog.text
    assert "write failed" not in caplog.text  # the rows were not sent round again
    assert saboteur.execute("SELECT count(*) FROM requests").fetchone()[0] == 3


def test_cost_uses_prices_per_million_tokens() -> None:
    model = ModelInfo(
        id="m",
        tier="cloud",
        backend="fake",
        context_length=10,
        input_cost_per_1m=2.5,
        output_cost_per_1m=10.0,
    )
    cost = request_cost(model, Usage(prompt_tokens=1000, completion_tokens=500))
    assert cost == pytest.approx(0.0025 + 0.005)


def test_cached_prompt_tokens_cost_the_cached_price_where_one_is_set() -> None:
    usage = Usage(prompt_tokens=1000, cached_tokens=800, completion_tokens=0)
    full = ModelInfo(id="m", tier="cloud", backend="fake", context_length=10, input_cost_per_1m=2.0)
    cheaper = full.model_copy(update={"cached_input_cost_per_1m": 0.5})
    assert request_cost(full, usage) == pytest.approx(0.002)  # unset: the full input price
    assert request_cost(cheaper, usage) == pytest.approx(200 * 2e-6 + 800 * 0.5e-6)
    claimed_too_many = Usage(prompt_tokens=100, cached_tokens=500)  # an upstream's miscount
    assert request_cost(cheaper, claimed_too_many) == pytest.approx(100 * 0.5e-6)


def test_rows_a_closing_log_cannot_write_are_counted_as_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure within a minute of the last one is not logged, and the server stopped
    with rows still waiting without a word of them."""
    log = RequestLog(tmp_path / "log.db")
    saboteur = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER full BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    log.record(RequestRecord(id="0", created_at=0, endpoint="chat", model_requested="m"))
    deadline = time.monotonic() + 10
    while "write failed" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    log.record(RequestRecord(id="1", created_at=1, endpoint="chat", model_requested="m"))
    log.close()
    assert "2 rows could not be written and are lost" in caplog.text


def test_an_answer_that_is_only_calls_is_logged_without_a_leading_blank() -> None:
    from smallfirst.completions import Completion
    from smallfirst.request_records import answers_text
    from smallfirst.types import FunctionCall, ToolCall

    call = ToolCall(id="c1", function=FunctionCall(name="weather", arguments='{"city": "Oslo"}'))
    only_call = Completion(text="", tool_calls=[call, call])
    said_and_called = Completion(text="Checking.", tool_calls=[call])
    assert answers_text([only_call]) == (
        '[call weather({"city": "Oslo"})] [call weather({"city": "Oslo"})]'
    )
    assert answers_text([said_and_called, only_call]) == (
        '[0] Checking. [call weather({"city": "Oslo"})]\n'
        '[1] [call weather({"city": "Oslo"})] [call weather({"city": "Oslo"})]'
    )
