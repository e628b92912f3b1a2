"""What the other processes sharing a request log spent today, for the daily budgets.

Every process on one data dir writes its rows to the same log, so the others' spend is
today's rows less the rows this process wrote (`SpendWatch.wrote`, told by the writer thread
after each commit). The writer thread reads it every 0.05 s (`RequestLog.SPEND_INTERVAL_S`),
only when another connection has committed since (`PRAGMA data_version`), and then only the
rows added since the last read: rowid order is commit order (a new row gets the largest
rowid plus one, one writer at a time), and the last row read still in the log means no
rowid was given again. Today's rows are summed whole only at start, when the UTC day turns
and when the last row read is gone: 93 ms for 100,000 rows here, 1.6 s for a million; the
rows added since the last read, 0.01 ms.

What it cannot see: another process's calls under way (their holds are in that process's
memory) and its rows not yet written (written every 0.05 s by a process sharing a budget).
With N processes a budget is overshot by at most the calls each had under way when it was
reached, plus what the others finished in the last ~0.1 s.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DAY_S", "KEYLESS", "SpendReport", "SpendWatch", "spent_today", "utc_day"]

DAY_S = 86_400  # UTC days, as the budgets count them (`routing/budget.py`)
# The per-key budget's one bucket for the requests made without an API key (keys not
# required, or not sent): they share it. (A key id is 12 hex digits: never this.)
KEYLESS = "-"
# (UTC day, total USD, USD per API key) spent today by the other processes
SpendReport = Callable[[int, float, dict[str, float]], None]
log = logging.getLogger("smallfirst.logs")

_DAY_ROWS = (  # at start and when the day turns: the created_at index (`+rowid`: not the table)
    "SELECT api_key_id, SUM(cost_usd) FROM requests WHERE created_at >= ? AND +rowid <= ? "
    "GROUP BY api_key_id"
)
_NEW_ROWS = (  # after: the rows past the last read (`+created_at`: not the index)
    "SELECT api_key_id, SUM(cost_usd) FROM requests WHERE rowid > ? AND rowid <= ? "
    "AND +created_at >= ? GROUP BY api_key_id"
)
_LAST_ROW = "SELECT rowid, id FROM requests ORDER BY rowid DESC LIMIT 1"
_ID_AT = "SELECT id FROM requests WHERE rowid = ?"


class SpentRow(Protocol):
    """What a request log row (`RequestRecord`) tells of its spend."""

    @property
    def created_at(self) -> float: ...
    @property
    def api_key_id(self) -> str | None: ...
    @property
    def cost_usd(self) -> float: ...


@dataclass
class Tally:
    """Dollars summed over rows: in all, and per API key (the rows without one: `KEYLESS`)."""

    total: float = 0.0
    per_key: dict[str, float] = field(default_factory=dict)

    def add(self, key: str | None, usd: float) -> None:
        self.total += usd
        bucket = KEYLESS if key is None else key
        self.per_key[bucket] = self.per_key.get(bucket, 0.0) + usd

    def less(self, part: Tally) -> Tally:
        """This tally without `part` of it (never below zero: sums taken in another order
        differ in the last bits)."""
        per_key = {k: max(0.0, usd - part.per_key.get(k, 0.0)) for k, usd in self.per_key.items()}
        return Tally(max(0.0, self.total - part.total), per_key)


@dataclass(frozen=True)
class DayRows:
    """The log's rows of one UTC day up to a rowid (every process's), summed."""

    day: int
    last_rowid: int
    last_id: str | None  # that row's: another row under its rowid means rowids were given again
    tally: Tally


class SpendWatch:
    """Today's spend by the other processes writing to a request log, reported to `report`
    (`RequestLog.watch_spend`). One thread at a time: the log's writer, once started."""

    def __init__(self, report: SpendReport) -> None:
        self._report = report
        self._logged: DayRows | None = None  # the log's rows of the day, all processes'
        self._own_day: int | None = None
        self._own = Tally()  # this process's rows of `_own_day`, once committed
        self._version: int | None = None  # `PRAGMA data_version` when last read
        self._failing = False

    def wrote(self, rows: Iterable[SpentRow]) -> None:
        """`rows`, this process's, are committed to the log."""
        for row in rows:
            day = utc_day(row.created_at)
            if self._own_day is None or day > self._own_day:
                self._own_day, self._own = day, Tally()
            if day == self._own_day:  # a request begun yesterday is yesterday's row
                self._own.add(row.api_key_id, row.cost_usd)

    def log_replaced(self) -> None:
        """The writer now writes to a new log at the path: the rows this process wrote to
        the old one are not in it, and what was read of the old one is summed again."""
        self._own_day, self._own = None, Tally()
        self._logged = self._version = None

    def refresh(self, connection: sqlite3.Connection, now: float | None = None) -> None:
        """Read and report, if another connection wrote to the log since the last refresh on
        this `connection` (always the writer's: its own commits do not count) or the day
        turned."""
        now = time.time() if now is None else now
        try:
            version = connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as error:
            self._failed(error)
            return
        logged = self._logged
        if version == self._version and logged is not None and logged.day == utc_day(now):
            return
        if self.read(connection, now):
            self._version = version

    def read(self, connection: sqlite3.Connection, now: float | None = None) -> bool:
        """Read the log and report; False (logged once, the last report standing) if the
        log could not be read."""
        day = utc_day(now)
        try:
            self._logged = _read(connection, day, self._logged)
        except sqlite3.Error as error:
            self._failed(error)
            return False
        if self._failing:
            log.info("request log: other processes' spend is read again")
            self._failing = False
        own = self._own if self._own_day == day else Tally()
        others = self._logged.tally.less(own)
        self._report(day, others.total, others.per_key)
        return True

    def _failed(self, error: sqlite3.Error) -> None:
        if not self._failing:
            log.error(
                "request log: cannot read other processes' spend (%s); the daily budgets count "
                "what was last read until it reads again",
                error,
            )
        self._failing = True


def spent_today(connection: sqlite3.Connection) -> Tally:
    """Today's rows of the log, every process's, summed; raises `sqlite3.Error` when they
    cannot be read."""
    return _read(connection, utc_day(), None).tally


def utc_day(timestamp: float | None = None) -> int:
    """The UTC day (days since the epoch) of `timestamp`, or of now."""
    return int((time.time() if timestamp is None else timestamp) // DAY_S)


def _read(connection: sqlite3.Connection, day: int, logged: DayRows | None) -> DayRows:
    """The log's rows of `day`: those past `logged`, added to it, while it is that day's."""
    last, last_id = connection.execute(_LAST_ROW).fetchone() or (0, None)
    # A new row takes the largest rowid plus one, so rowids grow unless the newest rows are
    # deleted: a log emptied, or pruned after lying idle past its retention. Their rowids are
    # then given again, so the last row read not being there any more is a log summed again.
    if logged is None or logged.day != day or not _still_there(connection, logged):
        rows = connection.execute(_DAY_ROWS, (day * DAY_S, last)).fetchall()
        tally = Tally()
    else:
        args = (logged.last_rowid, last, day * DAY_S)
        rows = connection.execute(_NEW_ROWS, args).fetchall()
        tally = Tally(logged.tally.total, dict(logged.tally.per_key))
    for key, usd in rows:
        tally.add(key, float(usd))
    return DayRows(day, last, last_id, tally)


def _still_there(connection: sqlite3.Connection, logged: DayRows) -> bool:
    """Whether the last row `logged` read is in the log still (the rows past it are new)."""
    if logged.last_id is None:  # the log was empty: every row is new
        return True
    found = connection.execute(_ID_AT, (logged.last_rowid,)).fetchone()
    return found is not None and found[0] == logged.last_id
