"""What the request log says about money, routing, latency and privacy over a time window.

Read-only over `requests.db`; `smallfirst stats` renders it. Costs are the ones recorded at
request time (at the prices configured then), so changing a price does not rewrite history.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from smallfirst.logs.costs import against_budget, dollars, signed_dollars
from smallfirst.logs.spend import KEYLESS, spent_today
from smallfirst.logs.store import ANSWERED_SQL, EMBEDDINGS_TIER, connect, migrate
from smallfirst.sqlite_snapshot import one_snapshot
from smallfirst.types import TIERS

TIER_COLUMNS = (
    "tier",
    "requests",
    "share",
    "tokens in",
    "cached in",
    "tokens out",
    "cost $",
    "baseline $",
    "p50 ms",
    "p95 ms",
    "TTFT p50 ms",
)


# Why a summary has no saved share: the code `stats --json` gives, and the reader's words.
NoSavingReason = Literal[
    "no_requests", "no_generated_tokens", "no_known_baseline", "unpriced_baseline"
]
NO_SAVING_REASONS: dict[NoSavingReason, str] = {
    "no_requests": "no requests in this window",
    "no_generated_tokens": "no chat or completion tokens were answered in this window",
    "no_known_baseline": "no request in this window has a known baseline",
    "unpriced_baseline": (
        "the baseline had no price when these requests were logged; set config `baseline`"
        " to the model you would pay for otherwise, with its prices, and the requests"
        " logged from then on show a saving"
    ),
}


class TierStats(BaseModel):
    tier: str
    requests: int  # answered; the tokens and cost below include failed requests' attempts
    prompt_tokens: int
    cached_tokens: int  # of prompt_tokens, not evaluated again / cache-priced
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float  # of the rows whose baseline is known
    latency_p50_ms: float | None  # None: no answer went to the end (every client left)
    latency_p95_ms: float | None
    ttft_p50_ms: float | None

    def cells(self, answered: int) -> dict[str, str]:
        """This tier's row for a table, formatted, keyed by `TIER_COLUMNS`."""
        values = (
            self.tier,
            str(self.requests),
            f"{self.requests / answered:.1%}" if answered else "-",  # listed for failed, paid rows
            str(self.prompt_tokens),
            f"{self.cached_tokens / self.prompt_tokens:.0%}" if self.prompt_tokens else "-",
            str(self.completion_tokens),
            dollars(self.cost_usd),
            dollars(self.baseline_cost_usd),
            _ms(self.latency_p50_ms),
            _ms(self.latency_p95_ms),
            _ms(self.ttft_p50_ms),
        )
        return dict(zip(TIER_COLUMNS, values, strict=True))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class Summary(BaseModel):
    since: float | None
    requests: int
    answered: int
    failed_by_status: dict[str, int]
    tiers: list[TierStats]
    cost_usd: float  # everything spent, failed requests' attempts included (the bill)
    failed_cost_usd: float  # of cost_usd, on requests that were not answered
    baseline_cost_usd: float  # of the requests whose baseline is known
    # Logged before smallfirst recorded baselines: no baseline, left out of the saving.
    baseline_unknown_requests: int
    baseline_unknown_cost_usd: float  # of cost_usd, on those requests
    routed_by_router: dict[str, dict[str, int]]  # router -> answering tier -> requests
    escalated_requests: int
    pii_actions: dict[str, int]
    pii_entities: dict[str, int]

    @property
    def saved_usd(self) -> float:
        return _saved_usd(self.baseline_cost_usd, self.cost_usd, self.baseline_unknown_cost_usd)

    @property
    def saved_share(self) -> float | None:
        return self.saved_usd / self.baseline_cost_usd if self.baseline_cost_usd > 0 else None

    @property
    def no_saving_reason(self) -> NoSavingReason | None:
        """Why there is no `saved_share`, as a code for programs; None when there is one."""
        if self.saved_share is not None:
            return None
        if not self.requests:
            return "no_requests"
        generated = [tier for tier in self.tiers if tier.tier != EMBEDDINGS_TIER]
        if not any(tier.prompt_tokens or tier.completion_tokens for tier in generated):
            return "no_generated_tokens"
        if self.baseline_unknown_requests == self.requests:
            return "no_known_baseline"
        return "unpriced_baseline"

    @property
    def why_no_saving(self) -> str | None:
        """Why there is no `saved_share`, for the reader; None when there is one."""
        reason = self.no_saving_reason
        return None if reason is None else NO_SAVING_REASONS[reason]

    @property
    def left_out_of_saving(self) -> str | None:
        """The requests the baseline and the saving leave out, and why; None when none are."""
        count = self.baseline_unknown_requests
        if not count:
            return None
        requests = f"{count} requests" if count > 1 else "1 request"
        return (
            f"{requests} logged before smallfirst recorded baselines"
            f" (${dollars(self.baseline_unknown_cost_usd)} of the spend)"
        )


# The per-key table: its title, what a key id is, and its name for the requests made without
# an API key (`null` in `stats --json`).
KEY_TABLE_TITLE = "By API key"
KEY_ID_MEANING = "the first 12 hex digits of the key's SHA-256"
NO_KEY_LABEL = "(no key)"


def key_columns(budget: float | None) -> tuple[str, ...]:
    """The per-key table's headers; with a per-key daily budget, today's column names it."""
    today = "today $ (UTC)" if budget is None else f"today $ of {dollars(budget)} (UTC)"
    return ("API key", "reqs", "spent $", "saved", today)


class KeyStats(BaseModel):
    """One API key's requests in a window, and its spend today as its daily budget counts it."""

    api_key_id: str | None  # the first 12 hex digits of the key's SHA-256; None: no key sent
    requests: int  # failed ones included, as in the spend
    cost_usd: float
    baseline_cost_usd: float  # of the rows whose baseline is known
    baseline_unknown_cost_usd: float  # of cost_usd, on rows from before baselines
    # Spent on the current UTC day, in the window or not: what `per_key_daily_usd` is held to.
    today_usd: float

    @property
    def saved_usd(self) -> float:
        return _saved_usd(self.baseline_cost_usd, self.cost_usd, self.baseline_unknown_cost_usd)

    def cells(self, budget: float | None) -> tuple[str, ...]:
        """This key's row for a table, formatted, in the order of `key_columns`."""
        return (
            self.api_key_id or NO_KEY_LABEL,
            str(self.requests),
            dollars(self.cost_usd),
            signed_dollars(self.saved_usd),
            against_budget(self.today_usd, budget),
        )


def _saved_usd(baseline_usd: float, cost_usd: float, baseline_unknown_cost_usd: float) -> float:
    """Baseline cost minus what was spent, on the requests whose baseline is known: negative
    if the baseline is the cheaper model."""
    return baseline_usd - (cost_usd - baseline_unknown_cost_usd)


_WINDOW_UNITS_S = {"m": 60, "h": 3600, "d": 86400}
_SQLITE_MAX_INTEGER = 2**63 - 1  # a larger LIMIT overflows; no log holds that many rows


def parse_window(text: str) -> float | None:
    """'30m', '24h', '7d' -> seconds; 'all' -> None. Raises ValueError on anything else."""
    if text == "all":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mhd])", text.strip())
    if match is None:
        raise ValueError(f"a window looks like 30m, 24h or 7d, or is 'all'; got {text!r}")
    seconds = float(match.group(1)) * _WINDOW_UNITS_S[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is longer than any log; use 'all'")
    if seconds == 0:
        raise ValueError(f"{text!r} is an empty window: no request falls in it")
    return seconds


_ANSWERED = ANSWERED_SQL


@contextmanager
def _log_at(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the log, migrated first: an older log gains the newer columns, as the
    gateway would give it."""
    connection = connect(path)
    try:
        migrate(connection)
        yield connection
    finally:
        connection.close()


def recent_requests(
    path: Path, limit: int = 20, request_id: str | None = None
) -> list[dict[str, Any]]:
    """The last `limit` rows of the log, newest first, as column -> value; with `request_id`
    (an answer's `x-request-id`), that request's row, or its prompts' rows for a batch."""
    where = "1 = 1"
    args: tuple[str, ...] = ()
    if request_id:  # the row "<id>", or a batch's rows "<id>-<n>" ("." follows "-" in ASCII)
        where = "id = ? OR (id > ? AND id < ?)"
        args = (request_id, f"{request_id}-", f"{request_id}.")
    with _log_at(path) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            f"SELECT * FROM requests WHERE {where} ORDER BY created_at DESC, id LIMIT ?",
            (*args, min(limit, _SQLITE_MAX_INTEGER)),
        ).fetchall()
        return [dict(row) for row in rows]


def summarize(path: Path, since: float | None = None) -> Summary:
    """Aggregate the log at `path` over rows created at or after `since` (epoch s; None: all)."""
    # one snapshot: a gateway logging meanwhile made each query count other rows (tiers'
    # shares over 100%, tier costs not adding up)
    with _log_at(path) as connection, one_snapshot(connection):
        return _summarize(connection, since, _kinds(connection, since, by_key=False))


def summarize_by_key(path: Path, since: float | None = None) -> tuple[Summary, list[KeyStats]]:
    """`summarize`, and the window's requests per API key from the same snapshot, the most
    spent first; a key that spent today but sent nothing in the window is listed too, with
    no requests."""
    with _log_at(path) as connection, one_snapshot(connection):
        kinds = _kinds(connection, since, by_key=True)
        return _summarize(connection, since, kinds), _key_stats(connection, kinds.kinds)


# Past this share of the log, a window's rows are read faster with the table read through
# than each looked up from the created_at index (7 days of a 10-day log of 200,000 rows:
# 180 ms a query through the index, 20 ms without).
_SCAN_SHARE = 0.1


# Past this share of the log, a tier's values in a window are read faster by walking all of
# them in order in 0006's index than by looking the window's up by date and sorting them
# (~0.1 us a step in the index, ~3 us a row looked up: 200,000 rows).
_WALK_SHARE = 0.02
# The indexes of 0006 that hold a tier's values of a column in order.
_IN_ORDER_OF = {"latency_ms": "requests_tier_latency", "ttft_ms": "requests_tier_ttft"}


@dataclass(frozen=True)
class _Window:
    """The rows created at or after `since`: `where` (a condition more may follow, with
    AND), its arguments, and the share of the log they are."""

    where: str
    args: tuple[float, ...]
    share: float

    @property
    def table(self) -> str:
        """What follows FROM to read the window's rows: through the created_at index when
        they are a small share of the log, else with the table read through (SQLite,
        knowing nothing of the log's dates, took the index for any window and the tier
        index for the tiers: `stats --since 7d` took 3.1 s on 200,000 rows)."""
        return "requests" if self.share < _SCAN_SHARE else "requests NOT INDEXED"

    @property
    def rows(self) -> str:
        return f"{self.table} WHERE {self.where}"

    def in_order_of(self, column: str) -> str:
        """The rows for reading a tier's `column` in order (conditions on `tier` follow):
        walked in order in 0006's index (sorting them took 30-80 ms a figure on 200,000
        rows), or for a very small window found by date and sorted (SQLite took the index
        for any window, and walked a tier's rows of every day for a 1-hour one)."""
        index = "requests_tier" if self.share < _WALK_SHARE else _IN_ORDER_OF[column]
        return f"requests INDEXED BY {index} WHERE {self.where}"


def _window(connection: sqlite3.Connection, since: float | None) -> _Window:
    if since is None:
        return _Window("1 = 1", (), share=1.0)
    (inside,) = connection.execute(
        "SELECT count(*) FROM requests WHERE created_at >= ?", (since,)
    ).fetchone()
    (total,) = connection.execute("SELECT count(*) FROM requests").fetchone()
    return _Window("created_at >= ?", (since,), inside / total if total else 0.0)


@dataclass(frozen=True)
class _Kind:
    """The window's requests of one tier, failure, router and privacy action (and API key,
    for `summarize_by_key`), summed."""

    tier: str | None
    failed_status: int | None  # None: answered (`ANSWERED_SQL`)
    router: str | None
    pii_action: str | None
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float | None  # None: no row's baseline is known
    baseline_unknown_requests: int
    baseline_unknown_cost_usd: float
    escalated: int
    went_to_the_end: int  # status < 400
    timed: int  # with a time to first token
    paid: bool  # a row cost something or read a prompt
    api_key_id: str | None  # None: no key, or the kinds are not told apart by key

    @property
    def answered(self) -> bool:
        return self.failed_status is None


# Every figure but the percentiles and the PII entities, from one pass over the window: a
# query per figure read the table 17 times (`stats --since all` on 200,000 rows: 3.1 s).
# The kinds are few (tiers x failures x routers x actions), and Python adds them up.
_KINDS_SQL = (
    f"SELECT tier, CASE WHEN {_ANSWERED} THEN NULL ELSE status END, router, pii_action,"
    " count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost_usd),"
    " sum(baseline_cost_usd), sum(baseline_cost_usd IS NULL),"
    " sum(CASE WHEN baseline_cost_usd IS NULL THEN cost_usd ELSE 0 END),"
    " sum(escalations IS NOT NULL), sum(status < 400), sum(ttft_ms IS NOT NULL),"
    " max(cost_usd > 0 OR prompt_tokens > 0), {key}"
    " FROM {rows} GROUP BY 1, 2, 3, 4{by_key}"
)


@dataclass(frozen=True)
class _Kinds:
    """The window, and its rows summed by kind."""

    window: _Window
    kinds: list[_Kind]


def _kinds(connection: sqlite3.Connection, since: float | None, *, by_key: bool) -> _Kinds:
    """The window's kinds; `by_key`, told apart by API key too: kinds times keys, read in the
    same pass (a second pass grouping by key took 170 ms on 200,000 rows, this one 70 ms)."""
    window = _window(connection, since)
    sql = _KINDS_SQL.format(
        rows=window.rows,
        key="api_key_id" if by_key else "NULL",
        by_key=", api_key_id" if by_key else "",
    )
    return _Kinds(window, [_Kind(*row) for row in connection.execute(sql, window.args)])


def _summarize(connection: sqlite3.Connection, since: float | None, read: _Kinds) -> Summary:
    window, kinds = read.window, read.kinds
    failed = [kind for kind in kinds if not kind.answered]
    failed_by_status: Counter[int] = Counter()
    actions: Counter[str] = Counter()
    for kind in kinds:
        if kind.failed_status is not None:
            failed_by_status[kind.failed_status] += kind.requests
        if kind.pii_action is not None:
            actions[kind.pii_action] += kind.requests
    return Summary(
        since=since,
        requests=sum(kind.requests for kind in kinds),
        answered=sum(kind.requests for kind in kinds if kind.answered),
        failed_by_status={str(status): n for status, n in sorted(failed_by_status.items())},
        tiers=_tier_stats(connection, window, kinds),
        cost_usd=sum(kind.cost_usd for kind in kinds),
        failed_cost_usd=sum(kind.cost_usd for kind in failed),
        baseline_cost_usd=_known_baselines(kinds),
        baseline_unknown_requests=sum(kind.baseline_unknown_requests for kind in kinds),
        baseline_unknown_cost_usd=sum(kind.baseline_unknown_cost_usd for kind in kinds),
        routed_by_router=_routed_by_router(kinds),
        escalated_requests=sum(kind.escalated for kind in kinds),
        pii_actions=dict(sorted(actions.items())),
        pii_entities=_pii_entity_counts(connection, window),
    )


def _key_stats(connection: sqlite3.Connection, kinds: list[_Kind]) -> list[KeyStats]:
    """Per API key (None: requests without one); today's spend is summed by the daily
    budget's own query (`logs/spend.py`), over the UTC day it counts."""
    today = {
        None if key == KEYLESS else key: usd for key, usd in spent_today(connection).per_key.items()
    }
    by_key: dict[str | None, list[_Kind]] = {key: [] for key in today}
    for kind in kinds:
        by_key.setdefault(kind.api_key_id, []).append(kind)
    keys = [
        KeyStats(
            api_key_id=key,
            requests=sum(kind.requests for kind in of_key),
            cost_usd=sum(kind.cost_usd for kind in of_key),
            baseline_cost_usd=_known_baselines(of_key),
            baseline_unknown_cost_usd=sum(kind.baseline_unknown_cost_usd for kind in of_key),
            today_usd=today.get(key, 0.0),
        )
        for key, of_key in by_key.items()
    ]
    return sorted(keys, key=lambda k: (-k.cost_usd, -k.today_usd, k.api_key_id or ""))


def _known_baselines(kinds: list[_Kind]) -> float:
    return sum(kind.baseline_cost_usd for kind in kinds if kind.baseline_cost_usd is not None)


def _routed_by_router(kinds: list[_Kind]) -> dict[str, dict[str, int]]:
    """router -> answering tier -> answered requests (a model asked for by id: router `none`,
    left out)."""
    counts: Counter[tuple[str, str]] = Counter()
    for kind in kinds:
        if kind.answered and kind.router not in (None, "none") and kind.tier is not None:
            counts[kind.router, kind.tier] += kind.requests
    routed: dict[str, dict[str, int]] = {}
    for (router, tier), count in sorted(
        counts.items(), key=lambda item: (item[0][0], _tier_order(item[0][1]))
    ):
        routed.setdefault(router, {})[tier] = count
    return routed


def _pii_entity_counts(connection: sqlite3.Connection, window: _Window) -> dict[str, int]:
    """Entity type -> how often the guard found it, summed over the requests' audits (by
    SQLite: the audits read into Python held the GIL, see `_tier_stats`)."""
    rows = connection.execute(
        f"SELECT key, sum(value) FROM {window.table}, json_each(pii_entities)"
        f" WHERE {window.where} AND pii_entities IS NOT NULL GROUP BY key",
        window.args,
    )
    return {kind: count for kind, count in sorted(rows)}


def _tier_stats(
    connection: sqlite3.Connection, window: _Window, kinds: list[_Kind]
) -> list[TierStats]:
    """Each tier's answered requests and their latency; its tokens and cost are those of all
    its rows (a failed request's paid attempt included, as in the totals and /metrics).
    Latency is that of answers that went to the end: a client that left after 0.2 s is no
    0.2 s answer (its time to first token, when one came, counts). A tier is listed once a
    row of it was answered or paid for.

    SQLite sums and sorts, and only the figures come back: the rows read into Python held
    the GIL, and /dashboard, reading in a thread, held the event loop back (200,000 rows:
    /healthz's p99 went from 3 to 75 ms while a page loaded)."""
    by_tier: dict[str, list[_Kind]] = {}
    for kind in kinds:
        if kind.tier is not None:
            by_tier.setdefault(kind.tier, []).append(kind)
    tiers = []
    for tier, of_tier in sorted(by_tier.items(), key=lambda item: _tier_order(item[0])):
        answered = [kind for kind in of_tier if kind.answered]
        if not answered and not any(kind.paid for kind in of_tier):
            continue
        went_to_the_end = _Rows(
            f"{window.in_order_of('latency_ms')} AND tier = ? AND status < 400",
            (*window.args, tier),
            sum(kind.went_to_the_end for kind in of_tier),
        )
        first_tokens = _Rows(
            f"{window.in_order_of('ttft_ms')} AND tier = ? AND {_ANSWERED} AND ttft_ms IS NOT NULL",
            (*window.args, tier),
            sum(kind.timed for kind in answered),
        )
        tiers.append(
            TierStats(
                tier=tier,
                requests=sum(kind.requests for kind in answered),
                prompt_tokens=sum(kind.prompt_tokens for kind in of_tier),
                cached_tokens=sum(kind.cached_tokens for kind in of_tier),
                completion_tokens=sum(kind.completion_tokens for kind in of_tier),
                cost_usd=sum(kind.cost_usd for kind in of_tier),
                baseline_cost_usd=_known_baselines(of_tier),
                latency_p50_ms=_percentile(connection, "latency_ms", went_to_the_end, 50),
                latency_p95_ms=_percentile(connection, "latency_ms", went_to_the_end, 95),
                ttft_p50_ms=_percentile(connection, "ttft_ms", first_tokens, 50),
            )
        )
    return tiers


def _tier_order(tier: str) -> tuple[int, str]:
    """edge, onprem, cloud (cheapest first), then anything else by name."""
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), tier)


@dataclass(frozen=True)
class _Rows:
    """Some of the log's rows: what follows FROM (a `_Window`'s rows, with more conditions),
    its arguments, and how many rows it holds."""

    source: str
    args: tuple[Any, ...]
    count: int


def _percentile(connection: sqlite3.Connection, column: str, rows: _Rows, pct: int) -> float | None:
    """The `pct`th percentile of `column` over `rows`; None without rows. Linear
    interpolation between closest ranks (numpy's default), as
    `statistics.quantiles(method="inclusive")` computes it, from the two ranks SQLite sorts to."""
    if not rows.count:
        return None
    rank, fraction = divmod(pct * (rows.count - 1), 100)
    wanted = 1 if rank == rows.count - 1 else 2  # the rank, and the one above where there is one
    # Sorted from the nearer end: SQLite keeps only the rows up to the offset, so a p95 sorts
    # a twentieth of them.
    above = rows.count - rank - wanted
    order, offset = ("DESC", above) if above < rank else ("", rank)
    values = [
        value
        for (value,) in connection.execute(
            f"SELECT {column} FROM {rows.source} ORDER BY {column} {order} LIMIT ? OFFSET ?",
            (*rows.args, wanted, offset),
        )
    ]
    low, high = (values[-1], values[0]) if order else (values[0], values[-1])
    return float((low * (100 - fraction) + high * fraction) / 100)
