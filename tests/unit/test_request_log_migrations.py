"""Request log migrations: all or nothing, once across processes, and honest about the rows
logged before a column existed."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smallfirst.logs import RequestLog, RequestRecord, migrate
from smallfirst.logs.store import connect

MIGRATIONS = Path(__file__).parents[2] / "src/smallfirst/logs/migrations"
ALL = [
    "0001_requests",
    "0002_routing_and_privacy",
    "0003_baseline_cost",
    "0004_cached_tokens",
    "0005_unknown_baselines",
    "0006_latency_order",
]
NOW = time.time()


def old_log(path: Path, applied_at: dict[str, float]) -> None:
    """A log as an older version left it: these migrations, applied at these epoch times."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at)")
    for name, when in applied_at.items():
        connection.executescript((MIGRATIONS / f"{name}.sql").read_text())
        julian_day = when / 86400 + 2440587.5
        connection.execute("INSERT INTO _migrations VALUES (?, ?)", (name, julian_day))
    connection.close()


def insert(path: Path, row_id: str, created_at: float, **values: Any) -> None:
    columns = {"id": row_id, "created_at": created_at, "endpoint": "chat", "model_requested": "m"}
    columns |= {"status": 200, "stream": 0, "latency_ms": 5.0} | values
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(
        f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        tuple(columns.values()),
    )
    connection.close()


def columns(connection: sqlite3.Connection) -> list[str]:
    return [row[1] for row in connection.execute("PRAGMA table_info(requests)")]


def applied(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute("SELECT name FROM _migrations ORDER BY name")]


@pytest.mark.parametrize("isolation_level", [None, "DEFERRED"])
def test_a_migration_stopped_half_way_leaves_the_log_as_it_was_and_runs_again(
    tmp_path: Path, isolation_level: str | None
) -> None:
    """Before, each ALTER of 0002 committed on its own: a process killed after the second left
    two columns and no record, and every later start failed on "duplicate column name"."""
    path = tmp_path / "requests.db"
    old_log(path, {"0001_requests": NOW})
    before = columns(sqlite3.connect(path))
    migrating = sqlite3.connect(path, isolation_level=isolation_level)
    onlooker = connect(path)  # what a process opening the log would find, had this one died
    seen_when_stopped = []
    alters = 0

    def stop_at_the_third_alter(action: int, *_: Any) -> int:
        nonlocal alters
        if action != sqlite3.SQLITE_ALTER_TABLE:
            return sqlite3.SQLITE_OK
        alters += 1
        if alters < 3:
            return sqlite3.SQLITE_OK
        seen_when_stopped.append((columns(onlooker), applied(onlooker)))
        return sqlite3.SQLITE_DENY

    migrating.set_authorizer(stop_at_the_third_alter)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        migrate(migrating)
    assert seen_when_stopped == [(before, ["0001_requests"])]
    assert (columns(onlooker), applied(onlooker)) == (before, ["0001_requests"])
    migrating.set_authorizer(None)
    assert migrate(migrating) == ALL[1:]
    assert applied(onlooker) == ALL
    assert {"router", "pii_action", "baseline_cost_usd", "cached_tokens"} <= set(columns(onlooker))


def test_processes_migrating_one_old_log_together_apply_each_migration_once(
    tmp_path: Path,
) -> None:
    """The second process reads `_migrations` while the first is applying 0003 and has not
    committed it: it must wait for the lock and look again (it failed on a duplicate column)."""
    path = tmp_path / "requests.db"
    old_log(path, {"0001_requests": NOW, "0002_routing_and_privacy": NOW})
    first, second = connect(path), connect(path)
    first_recording, second_acting = threading.Event(), threading.Event()

    def pause_before_recording(statement: str) -> None:
        if "INSERT INTO _migrations" in statement and not first_recording.is_set():
            first_recording.set()
            assert second_acting.wait(timeout=30)

    read_applied = threading.Event()

    def note_the_first_step_after_reading(statement: str) -> None:
        if read_applied.is_set():
            second_acting.set()
        elif "FROM _migrations" in statement:
            read_applied.set()

    first.set_trace_callback(pause_before_recording)
    second.set_trace_callback(note_the_first_step_after_reading)
    results: dict[str, list[str] | BaseException] = {}
    first_thread = _run(results, "first", lambda: migrate(first))
    assert first_recording.wait(timeout=30)
    second_thread = _run(results, "second", lambda: migrate(second))
    first_thread.join(timeout=60)
    second_thread.join(timeout=60)
    assert not isinstance(results["first"], BaseException), results["first"]
    assert not isinstance(results["second"], BaseException), results["second"]
    assert sorted([*results["first"], *results["second"]]) == ALL[2:]
    assert applied(first) == ALL
    assert columns(first).count("baseline_cost_usd") == 1


def _run(
    results: dict[str, list[str] | BaseException], name: str, work: Callable[[], list[str]]
) -> threading.Thread:
    def keep_result() -> None:
        try:
            results[name] = work()
        except BaseException as error:  # handed to the test's thread
            results[name] = error

    thread = threading.Thread(target=keep_result)
    thread.start()
    return thread


def test_rows_logged_before_the_baseline_column_have_an_unknown_baseline(tmp_path: Path) -> None:
    """0003 gave them its DEFAULT 0: spent with nothing saved. Rows logged since keep theirs,
    a 0 included (a failed request's)."""
    path = tmp_path / "requests.db"
    upgraded = NOW - 3600
    old_log(path, {name: upgraded - 86400 for name in ALL[:2]})
    insert(path, "old", upgraded - 60, cost_usd=0.05)
    old_log(path, {name: upgraded for name in ALL[2:4]})
    insert(path, "new", upgraded + 60, cost_usd=0.05, baseline_cost_usd=0.07)
    insert(path, "failed", upgraded + 120, status=502, cost_usd=0.01, baseline_cost_usd=0.0)
    connection = connect(path)
    assert migrate(connection) == ALL[4:]
    rows = connection.execute("SELECT id, baseline_cost_usd, cost_usd FROM requests ORDER BY id")
    assert rows.fetchall() == [("failed", 0.0, 0.01), ("new", 0.07, 0.05), ("old", None, 0.05)]
    indexes = {row[1] for row in connection.execute("PRAGMA index_list(requests)")}
    assert {"requests_created_at", "requests_tier"} <= indexes
    log = RequestLog(path)
    log.record(RequestRecord(id="next", created_at=NOW, endpoint="chat", model_requested="m"))
    log.close()
    (baseline,) = connection.execute("SELECT baseline_cost_usd FROM requests WHERE id = 'next'")
    assert baseline == (0.0,)
