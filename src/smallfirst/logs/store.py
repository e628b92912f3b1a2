"""The request log: one SQLite row per request, written off the event loop.

Schema changes are named migrations in `migrations/NNNN_name.sql`, applied in order and
recorded in `_migrations`; a shipped migration is never edited (simonw/llm's rule).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import BaseModel, field_validator

from smallfirst.errors import CLIENT_CLOSED_REQUEST
from smallfirst.logs.spend import SpendReport, SpendWatch, spent_today
from smallfirst.paths import create_private, file_identity
from smallfirst.sqlite_migrations import MigrationsTable, apply_migrations

MIGRATIONS_PACKAGE = "smallfirst.logs.migrations"
LOG_FILE = "requests.db"  # in the data dir
# Another process waits this long for the write lock rather than fail: a migration that copies
# the table (0005) takes about 3 s per million rows here.
BUSY_TIMEOUT_S = 30.0
# SQLite leaves the -wal file at the largest size it ever reached while a connection is
# open: a retention prune of 180,000 rows left a 36 MB requests.db-wal beside a 37 MB log
# until the gateway stopped. Past this size it is cut back once written past; an ordinary
# WAL (checkpointed at 1,000 pages, ~4 MB) stays under it.
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024
# A model id a client sends is its own text: a 3.5 MB one made a 3.5 MB row for each request
# refused for it (20 such requests grew the log by 54 MB). Longer ids are logged cut here.
MAX_LOGGED_MODEL_CHARS = 256
log = logging.getLogger("smallfirst.logs")
DAMAGED_WHILE_SERVING = (
    "; move it aside, with its -wal and -shm files: a new log is started there for them"
)
# A row's values that cannot be bound to a statement, before SQLite reads them: writing it
# again cannot help. One such row (a token count past SQLite's integers, a lone surrogate in a
# text) ended the writer thread, and no row after it was written: the rows of its batch are
# now written one at a time, and only the rows at fault are dropped, each named in the
# server's log. (A failed constraint is the file's: the rows wait, as on a full disk.)
ROW_FAULTS = (sqlite3.InterfaceError, OverflowError, ValueError)


class RequestRecord(BaseModel):
    id: str
    created_at: float
    endpoint: str
    model_requested: str
    model_answered: str | None = None
    tier: str | None = None
    status: int = 200
    error_code: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens: not evaluated again (local) or cache-priced
    completion_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0  # the same tokens at the baseline model's prices
    api_key_id: str | None = None
    route_reason: str | None = None
    prompt: str | None = None
    response: str | None = None
    router: str | None = None
    route_score: float | None = None
    escalations: str | None = None  # comma-separated model ids tried before the answering one
    pii_entities: str | None = None  # JSON {entity_type: count}; never values
    pii_action: str | None = None

    @field_validator("model_requested")
    @classmethod
    def _cut_if_long(cls, model: str) -> str:
        if len(model) <= MAX_LOGGED_MODEL_CHARS:
            return model
        return model[:MAX_LOGGED_MODEL_CHARS] + "…"

    @property
    def answered(self) -> bool:
        """As `ANSWERED_SQL` has it."""
        return self.status < 400 or (self.status == CLIENT_CLOSED_REQUEST and self.tier is not None)


# Answered: a 200, or a request its client left (499) once a model had it, which worked on it
# (a stream's tokens were produced and paid for). A client that left before routing, or while
# it waited for a local model's slot, is a 499 no model read: logged without a tier and
# counted with the failures, so that the tiers' shares add up to 100%.
ANSWERED_SQL = f"(status < 400 OR (status = {CLIENT_CLOSED_REQUEST} AND tier IS NOT NULL))"
EMBEDDINGS_TIER = "embeddings"  # the tier embeddings are logged under: they have no baseline


# The log's own form of the table: names without ".sql", applied_at a Julian day (0005 reads it).
LOG_MIGRATIONS = MigrationsTable(
    create="CREATE TABLE IF NOT EXISTS _migrations "
    "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)",
    record="INSERT INTO _migrations (name, applied_at) VALUES (?, julianday('now'))",
    names_keep_suffix=False,
)


def migrate(connection: sqlite3.Connection, package: str = MIGRATIONS_PACKAGE) -> list[str]:
    """Apply pending migrations in name order; returns the names applied now (once across
    processes, all or nothing: `smallfirst.sqlite_migrations`)."""
    return apply_migrations(connection, package, LOG_MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: the only transactions are the explicit ones. A new
    file is made readable by this user only."""
    create_private(path)
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    return connection


def prepare(path: Path, *, read_spend: bool = False) -> None:
    """Create the log at `path`, or bring an older one up to date. With `read_spend`, also
    sum today's spend, as a gateway with a daily budget does when it starts: a log too
    damaged for that raises here (the gateway only logged it, and its budgets began at $0)."""
    connection = connect(path)
    try:
        migrate(connection)
        if read_spend:
            spent_today(connection)
    finally:
        connection.close()


def open_error(path: Path, error: sqlite3.DatabaseError) -> str:
    """`error` from opening the log at `path`, as one line naming it and what to do."""
    if path.is_dir():
        return f"{path} is not a request log: it is a directory"
    if not isinstance(error, sqlite3.OperationalError):  # "file is not a database", "malformed"
        return (
            f"{path} is not a request log ({error}): move it aside, with its -wal and -shm"
            " files if any, to start a new log"
        )
    for place in (path.parent, path):
        if place.exists() and not os.access(place, os.W_OK):
            return (  # the -wal and -shm files beside the log, and a migration, are writes
                f"cannot read the request log {path} ({error}): {place} is not writable,"
                " and SQLite writes there even to read the log"
            )
    if path.parent.is_dir() and shutil.disk_usage(path.parent).free == 0:
        return (  # SQLite says "disk I/O error" when the -shm file beside the log cannot be made
            f"cannot read the request log {path} ({error}): the disk holding {path.parent} is full"
        )
    return f"cannot read the request log {path}: {error}"


class RequestLog:
    """Collects records and writes them in batches on a background thread.

    The writer wakes on a timer instead of per record: waking a thread per request costs the
    event loop a GIL hand-off on every call (measured in the gateway overhead benchmark).
    """

    FLUSH_INTERVAL_S = 0.2
    # Sharing a budget (`watch_spend`): rows are written and the others' read this often, as
    # the budget's overshoot grows with the lag (two gateways, $0.05: $0.075-0.084 spent at
    # 0.2 s, $0.061-0.064 at 0.05 s); an idle wake is a few microseconds off the event loop.
    SPEND_INTERVAL_S = 0.05
    PRUNE_INTERVAL_S = 3600.0
    # While writes fail (disk full, file removed) rows wait in memory up to this many; past
    # it the oldest are dropped and counted in the log line, never without a word.
    MAX_WAITING = 100_000

    def __init__(self, path: Path, retention_s: float | None = None) -> None:
        """`retention_s`: rows older than this are deleted, at start and then hourly."""
        self.path = path
        self.retention_s = retention_s
        prepare(path)
        self._pending: deque[RequestRecord] = deque()
        self.dropped_rows = 0
        self._last_warning: float | None = None  # while writes fail: when it was last logged
        self._closing = threading.Event()
        self._spend_watch: SpendWatch | None = None
        self._file: tuple[int, int] | None = None  # the writer's file (`paths.file_identity`)
        self._writer = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._writer.start()

    def record(self, row: RequestRecord) -> None:
        self._pending.append(row)  # deque.append is atomic; no lock, no wake-up

    def watch_spend(self, report: SpendReport) -> None:
        """Report today's spend by the other processes writing to this log to `report`
        (`logs/spend.py`): now, and after each batch once another process wrote. Call it
        before the first record: rows this process wrote before would count as others'."""
        watch = SpendWatch(report)
        connection = connect(self.path)
        try:
            watch.read(connection)
        finally:
            connection.close()
        self._spend_watch = watch

    def close(self) -> None:
        """Flush everything recorded, then stop the writer."""
        self._closing.set()
        self._writer.join(timeout=10)

    def _write_loop(self) -> None:
        connection = connect(self.path)
        self._file = file_identity(self.path)
        next_prune = 0.0
        while True:
            interval = self.FLUSH_INTERVAL_S if self._spend_watch is None else self.SPEND_INTERVAL_S
            closing = self._closing.wait(interval)
            watch = self._spend_watch
            rows = [self._pending.popleft() for _ in range(len(self._pending))]
            if rows:
                connection = self._write(connection, rows, watch)
            if watch is not None:
                watch.refresh(connection)
            if self.retention_s is not None and time.monotonic() >= next_prune:
                next_prune = self._prune(connection, self.retention_s)
            if closing:
                break
        connection.close()
        if self._pending:  # the last write failed too: these rows end with the process
            log.error(
                "request log %s: %d rows could not be written and are lost",
                self.path,
                len(self._pending),
            )

    def _write(
        self, connection: sqlite3.Connection, rows: list[RequestRecord], watch: SpendWatch | None
    ) -> sqlite3.Connection:
        """Write `rows` into the log at `path` (returned: a new connection if the file was
        replaced); rows that fail wait for the next batch."""
        try:
            # One transaction per batch: in autocommit mode each row committed on its
            # own, and the rows of a batch that failed half-way were retried, twice.
            connection = self._at_path(connection)
            connection.execute("BEGIN")
            with connection:
                _insert(connection, rows)
            self._last_warning = None
        except ROW_FAULTS:
            rows = self._write_each(connection, rows)
        except (sqlite3.Error, OSError) as error:  # OSError: its folder not made again
            self._keep_for_retry(rows, error)
            return connection
        if watch is not None:
            watch.wrote(rows)
        return connection

    def _write_each(
        self, connection: sqlite3.Connection, rows: list[RequestRecord]
    ) -> list[RequestRecord]:
        """Write `rows` one at a time, dropping those the log cannot hold (`ROW_FAULTS`); the
        rest of the batch waits for the next one if the file fails. Returns the rows written."""
        written: list[RequestRecord] = []
        for position, row in enumerate(rows):
            try:
                _insert(connection, [row])  # a transaction of its own: autocommit
            except ROW_FAULTS as fault:
                self.dropped_rows += 1
                log.error(
                    "request log %s: request %s cannot be kept (%s)", self.path, row.id, fault
                )
            except (sqlite3.Error, OSError) as error:
                self._keep_for_retry(rows[position:], error)
                break
            else:
                written.append(row)
        else:
            self._last_warning = None
        return written

    def _prune(self, connection: sqlite3.Connection, retention_s: float) -> float:
        """Delete the rows older than `retention_s`; returns when to prune next."""
        try:
            with connection:
                cutoff = time.time() - retention_s
                connection.execute("DELETE FROM requests WHERE created_at < ?", (cutoff,))
        except sqlite3.Error as error:  # the rows are written; prune again later
            log.error("request log %s: pruning failed (%s)", self.path, error)
            return time.monotonic() + 60
        return time.monotonic() + self.PRUNE_INTERVAL_S

    def _at_path(self, connection: sqlite3.Connection) -> sqlite3.Connection:
        """`connection`, or one to a new log if the file at `path` is not the one it has open
        (moved aside or deleted while serving: the rows went on into the old file, which
        `stats` and the dashboard no longer read, and were lost with a deleted one)."""
        if file_identity(self.path) == self._file:
            return connection
        fresh = connect(self.path)  # a failure leaves the rows waiting (`_keep_for_retry`)
        try:
            migrate(fresh)
        except sqlite3.Error:
            fresh.close()
            raise
        connection.close()
        self._file = file_identity(self.path)
        if self._spend_watch is not None:
            self._spend_watch.log_replaced()
        log.warning("request log %s was moved or deleted: a new log is started there", self.path)
        return fresh

    def _keep_for_retry(self, rows: list[RequestRecord], error: sqlite3.Error | OSError) -> None:
        """A failed write: the rows go back in front, and the failure is logged once a minute."""
        self._pending.extendleft(reversed(rows))
        dropped = 0
        while len(self._pending) > self.MAX_WAITING:
            self._pending.popleft()
            dropped += 1
        self.dropped_rows += dropped
        now = time.monotonic()
        if self._last_warning is None or now - self._last_warning >= 60 or dropped:
            self._last_warning = now
            log.error(
                "request log %s: write failed (%s); %d rows wait in memory, %d dropped so far%s",
                self.path,
                error,
                len(self._pending),
                self.dropped_rows,
                # "malformed", "not a database" (a constraint failed is an IntegrityError)
                DAMAGED_WHILE_SERVING if type(error) is sqlite3.DatabaseError else "",
            )


def _insert(connection: sqlite3.Connection, rows: list[RequestRecord]) -> None:
    columns = list(RequestRecord.model_fields)
    sql = f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    connection.executemany(sql, [_values(r, columns) for r in rows])


def _values(row: RequestRecord, columns: list[str]) -> tuple[Any, ...]:
    data = row.model_dump()
    return tuple(int(data[c]) if isinstance(data[c], bool) else data[c] for c in columns)
