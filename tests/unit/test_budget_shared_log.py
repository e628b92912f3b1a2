"""Daily budgets shared by the gateway processes writing to one request log (one data dir)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import cast

import pytest

from smallfirst.config import BudgetConfig
from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.logs.spend import DAY_S, KEYLESS, SpendWatch, utc_day
from smallfirst.logs.store import LOG_FILE, connect
from smallfirst.routing.budget import SpendTracker
from tests.helpers import chat_body, eventually, fake_client, fake_settings

Report = tuple[int, float, dict[str, float]]


def row(usd: float, key: str | None = None, created_at: float | None = None) -> RequestRecord:
    return RequestRecord(
        id=uuid.uuid4().hex,
        created_at=time.time() if created_at is None else created_at,
        endpoint="chat.completions",
        model_requested="big",
        cost_usd=usd,
        api_key_id=key,
    )


def rows_in(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def test_a_budget_spent_through_another_gateway_on_the_data_dir_is_spent_here(
    tmp_path: Path,
) -> None:
    """Each gateway enforced the budget alone: two on one data dir spent $0.112 of $0.05."""
    settings = fake_settings(tmp_path, routing={"budget": {"daily_usd": 1e-9}})
    (client_a, _), (client_b, gateway_b) = fake_client(settings), fake_client(settings)
    with client_a, client_b:
        assert gateway_b.spend.exhausted(None) is None
        assert client_a.post("/v1/chat/completions", json=chat_body("big")).status_code == 200
        assert eventually(lambda: gateway_b.spend.exhausted(None) is not None)
        refused = client_b.post("/v1/chat/completions", json=chat_body("big"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
        kept = client_b.post("/v1/chat/completions", json=chat_body("auto", route="cloud"))
        assert kept.json()["model"] == "tiny"
        assert "daily budget $1e-09 spent" in kept.json()["smallfirst"]["reason"]


def test_a_gateway_restarted_on_the_data_dir_starts_from_todays_spend(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, routing={"budget": {"daily_usd": 1e-9}})
    client, _ = fake_client(settings)
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 200
    client, _ = fake_client(settings)
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 429


def test_per_key_budgets_count_the_other_process_and_this_ones_rows_once(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    config = BudgetConfig(per_key_daily_usd=1.0)
    here, there = SpendTracker(config), SpendTracker(config)
    here_log, there_log = RequestLog(path), RequestLog(path)
    here_log.watch_spend(here.others_spent)
    there_log.watch_spend(there.others_spent)
    try:
        here.add(0.4, "k1")
        here_log.record(row(0.4, "k1"))
        assert eventually(lambda: rows_in(path) == 1)
        there.add(0.5, "k1")
        there_log.record(row(0.5, "k1"))
        there.add(1.0, "k2")
        there_log.record(row(1.0, "k2"))
        assert eventually(lambda: here.exhausted("k2") is not None)  # read after the other wrote
        assert here.exhausted("k1") is None  # 0.4 here and 0.5 there; its own 0.4 not twice
        assert there.exhausted("k1") is None
        here.add(0.2, "k1")
        here_log.record(row(0.2, "k1"))
        assert here.exhausted("k1") == "daily budget $1 for this API key spent"
        assert eventually(lambda: there.exhausted("k1") is not None)
        assert there.exhausted("k3") is None
    finally:
        here_log.close()
        there_log.close()


def test_this_processs_own_rows_are_left_out_of_the_others_spend(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    mine, other = RequestLog(path), RequestLog(path)
    reports: list[Report] = []
    mine.watch_spend(lambda day, total, per_key: reports.append((day, total, per_key)))
    try:
        assert reports == [(utc_day(time.time()), 0.0, {})]
        mine.record(row(0.25, "k"))
        assert eventually(lambda: rows_in(path) == 1)
        other.record(row(0.5, "k"))
        other.record(row(0.125))
        assert eventually(lambda: reports[-1][1] >= 0.625)  # both of the other's rows read
        # and not the 0.25 written here; the row without a key in the keyless bucket
        assert reports[-1][1:] == (0.625, {"k": 0.5, KEYLESS: 0.125})
    finally:
        mine.close()
        other.close()


def test_the_others_spend_starts_again_with_each_utc_day(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    today = utc_day(time.time())
    log = RequestLog(path)
    log.record(row(1.0, "k", created_at=today * DAY_S - 60))  # yesterday's
    log.record(row(0.3, "k", created_at=today * DAY_S + 60))
    log.close()
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    connection = connect(path)
    try:
        watch.refresh(connection, now=today * DAY_S + 120)
        assert reports[-1] == (today, 0.3, {"k": 0.3})
        watch.refresh(connection, now=(today + 1) * DAY_S + 1)  # nothing written: the day turned
        assert reports[-1] == (today + 1, 0.0, {})
    finally:
        connection.close()
    spend = SpendTracker(BudgetConfig(daily_usd=1.0))
    spend.others_spent(today, 1.0, {})
    assert spend.exhausted(None, now=today * DAY_S)
    assert spend.exhausted(None, now=(today + 1) * DAY_S) is None
    spend.others_spent(today, 1.0, {})  # read before midnight, told after
    assert spend.exhausted(None, now=(today + 1) * DAY_S) is None
    spend.others_spent(today + 2, 1.0, {})  # a day this process has not seen a request of
    assert spend.exhausted(None, now=(today + 2) * DAY_S)


def test_a_log_that_cannot_be_read_keeps_the_last_figures_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / LOG_FILE
    log = RequestLog(path)
    log.record(row(0.3))
    log.close()
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    good, broken = connect(path), sqlite3.connect(tmp_path / "not-a-log.db")
    try:
        assert watch.read(good)
        with caplog.at_level(logging.ERROR, logger="smallfirst.logs"):
            watch.refresh(broken)  # no requests table
            watch.refresh(broken)
        assert [r.levelno for r in caplog.records] == [logging.ERROR]
        assert "cannot read other processes' spend" in caplog.text
        assert [total for _, total, _ in reports] == [0.3]
    finally:
        good.close()
        broken.close()


def test_a_log_emptied_and_written_again_is_summed_anew(tmp_path: Path) -> None:
    """New rows then take rowids from 1 again: read past the last rowid seen, they were not."""
    path = tmp_path / LOG_FILE
    log = RequestLog(path)
    for usd in (0.1, 0.2, 0.3):
        log.record(row(usd))
    log.close()
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    connection = connect(path)
    try:
        watch.refresh(connection)
        assert reports[-1][1] == pytest.approx(0.6)
        with sqlite3.connect(path) as other:
            other.execute("DELETE FROM requests")
        log = RequestLog(path)
        log.record(row(0.05))
        log.close()
        watch.refresh(connection)
        assert reports[-1][1] == 0.05
    finally:
        connection.close()


def test_rowids_given_again_after_the_newest_row_was_pruned_are_read(tmp_path: Path) -> None:
    """Pruning a log idle past its retention deletes its newest row, and SQLite gives that
    rowid to the next row: this process's own rows took rowids up to the last one read, the
    other's next row was read alone, and this process's rows were subtracted from it."""
    path = tmp_path / LOG_FILE
    today = utc_day(time.time())
    log = RequestLog(path)
    log.record(row(1.0, created_at=(today - 2) * DAY_S))  # the log's last row, two days old
    log.close()
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    writer = connect(path)  # as the writer thread does it, on its own connection
    try:
        watch.refresh(writer)
        writer.execute("DELETE FROM requests WHERE created_at < ?", (time.time() - DAY_S,))
        mine = row(0.25)
        writer.execute(
            "INSERT INTO requests (id, created_at, endpoint, model_requested, status, stream, "
            "latency_ms, cost_usd) VALUES (?, ?, 'chat.completions', 'big', 200, 0, 0, ?)",
            (mine.id, mine.created_at, mine.cost_usd),
        )
        watch.wrote([mine])
        watch.refresh(writer)  # its own commit: nothing to read
        other = RequestLog(path)
        other.record(row(0.5))
        other.close()
        watch.refresh(writer)
        assert reports[-1][1] == 0.5
    finally:
        writer.close()


def test_the_others_spend_is_read_from_a_log_started_again_after_a_deletion(
    tmp_path: Path,
) -> None:
    """The rows this process wrote to the deleted log are not in the new one: they were
    still subtracted from it, and the other process's spend read as nothing."""
    data_dir = tmp_path / "data"
    path = data_dir / LOG_FILE
    mine = RequestLog(path)
    reports: list[Report] = []
    mine.watch_spend(lambda day, total, per_key: reports.append((day, total, per_key)))
    try:
        mine.record(row(1.0))
        assert eventually(lambda: rows_in(path) == 1)
        shutil.rmtree(data_dir)
        other = RequestLog(path)
        other.record(row(0.5))
        other.close()
        mine.record(row(0.25))  # written to the new log, where the other's row is
        assert eventually(lambda: reports[-1][1] == 0.5)
    finally:
        mine.close()


def written(path: Path, *rows: RequestRecord) -> None:
    """`rows` in the log at `path`, as another process writes them."""
    log = RequestLog(path)
    for record in rows:
        log.record(record)
    log.close()


def test_each_of_todays_own_rows_is_left_out_and_no_other_days(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    today = utc_day(time.time())
    mine = [
        row(0.25, "k", created_at=today * DAY_S + 10),
        row(0.25, "k", created_at=today * DAY_S + 20),
        row(1.0, "k", created_at=today * DAY_S - 60),  # begun yesterday, written today
    ]
    written(path, *mine, row(0.5, "k", created_at=today * DAY_S + 30))
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    watch.wrote(mine)
    connection = connect(path)
    try:
        assert watch.read(connection, now=today * DAY_S + 120)
        assert reports[-1] == (today, 0.5, {"k": 0.5})
        written(path, row(0.125, created_at=(today + 1) * DAY_S + 10))
        assert watch.read(connection, now=(today + 1) * DAY_S + 60)
        assert reports[-1] == (today + 1, 0.125, {KEYLESS: 0.125})  # yesterday's own not taken
    finally:
        connection.close()


def test_the_others_spend_is_never_below_zero(tmp_path: Path) -> None:
    """This process's rows can be gone from the log (deleted by hand): what is left of the
    others' spend is none, not a negative amount that would lift the budget."""
    path = tmp_path / LOG_FILE
    written(path, row(0.1, "k"))
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    watch.wrote([row(0.3, "k")])  # not in the log any more
    connection = connect(path)
    try:
        assert watch.read(connection)
        assert reports[-1][1:] == (0.0, {"k": 0.0})
    finally:
        connection.close()


def test_a_row_written_at_midnight_is_the_new_days(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    today = utc_day(time.time())
    written(path, row(1.0, created_at=today * DAY_S - 0.001), row(0.3, created_at=today * DAY_S))
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    connection = connect(path)
    try:
        assert watch.read(connection, now=today * DAY_S + 1)
        assert reports[-1] == (today, 0.3, {KEYLESS: 0.3})
    finally:
        connection.close()


class FailingReads:
    """A log connection whose reads of the requests table fail while `failing` is set (a
    locked or damaged file); `PRAGMA data_version` still answers."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.failing = False

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if self.failing and "requests" in sql:
            raise sqlite3.OperationalError("database is locked")
        return self.connection.execute(sql, *args)


def test_a_failed_read_is_tried_again_though_nothing_new_was_written(tmp_path: Path) -> None:
    """The rows another process committed before a failed read are read at the next refresh,
    not only after its next commit."""
    path = tmp_path / LOG_FILE
    written(path, row(0.1))
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    reads = FailingReads(connect(path))
    log_connection = cast(sqlite3.Connection, reads)
    try:
        watch.refresh(log_connection)
        written(path, row(0.2))
        reads.failing = True
        watch.refresh(log_connection)
        reads.failing = False
        watch.refresh(log_connection)
        assert [total for _, total, _ in reports] == [0.1, pytest.approx(0.3)]
    finally:
        reads.connection.close()


def test_a_log_that_fails_again_after_reading_again_says_so_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / LOG_FILE
    written(path, row(0.1))
    watch = SpendWatch(lambda day, total, per_key: None)
    reads = FailingReads(connect(path))
    log_connection = cast(sqlite3.Connection, reads)
    try:
        with caplog.at_level(logging.INFO, logger="smallfirst.logs"):
            for failing in (True, False, True):
                reads.failing = failing
                watch.read(log_connection)
        assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO, logging.ERROR]
        assert "is read again" in caplog.records[1].getMessage()
    finally:
        reads.connection.close()


def test_a_row_of_yesterday_written_after_a_read_is_not_todays_spend(tmp_path: Path) -> None:
    """A request begun before midnight is written after it: the rows read since the last
    read are today's only."""
    path = tmp_path / LOG_FILE
    today = utc_day(time.time())
    written(path, row(0.5, created_at=today * DAY_S + 10))
    reports: list[Report] = []
    watch = SpendWatch(lambda day, total, per_key: reports.append((day, total, per_key)))
    connection = connect(path)
    try:
        assert watch.read(connection, now=today * DAY_S + 60)
        written(path, row(1.0, created_at=today * DAY_S - 60), row(0.25, created_at=today * DAY_S))
        assert watch.read(connection, now=today * DAY_S + 120)
        assert reports[-1] == (today, 0.75, {KEYLESS: 0.75})
    finally:
        connection.close()
