"""`smallfirst stats` (money saved, routing split, latency, privacy events) and
`smallfirst requests` (the latest requests and why they went where they went), from the log."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smallfirst.cli.common import (
    CONFIG_OPTION,
    counted,
    fail,
    output_console,
    settings_or_exit,
)

if TYPE_CHECKING:
    from rich.text import Text

    from smallfirst.config import Settings
    from smallfirst.logs.stats import KeyStats, Summary

# Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts a sequence
# that can clear the screen, recolour or retitle it, or make a link), line and paragraph
# separators, and the marks that reorder text (bidi overrides and isolates).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# The tier table on an 80-column terminal: shorter headers, no baseline column (it is in the
# money lines above the table).
_TERMINAL_COLUMNS = {
    "tier": "tier",
    "requests": "reqs",
    "share": "share",
    "tokens in": "tok in",
    "cached in": "cached",
    "tokens out": "tok out",
    "cost $": "cost $",
    "p50 ms": "p50 ms",
    "p95 ms": "p95 ms",
    "TTFT p50 ms": "TTFT p50",
}


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.command("requests")(requests)


def stats(
    since: Annotated[
        str, typer.Option(help="Window: 30m, 24h, 7d, ... or 'all'.", show_default=True)
    ] = "24h",
    config: Path | None = CONFIG_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    by_key: Annotated[
        bool,
        typer.Option(
            "--by-key",
            help="Also per API key: requests, spend and saving in the window, spend today"
            " (UTC) against routing.budget.per_key_daily_usd.",
        ),
    ] = False,
) -> None:
    """What the gateway spent and saved, where requests went, how fast, and PII events."""
    from smallfirst.logs.stats import summarize, summarize_by_key

    settings = settings_or_exit(config)
    window_s = _parse_window(since)
    path = _log_path(settings.resolved_data_dir)
    start = None if window_s is None else time.time() - window_s
    keys: list[KeyStats] | None = None
    with _reading(path):
        if by_key:
            summary, keys = summarize_by_key(path, start)
        else:
            summary = summarize(path, start)
    baseline = _baseline_name(settings)
    key_budget = settings.routing.budget.per_key_daily_usd
    if as_json:
        payload = summary.model_dump() | {
            "saved_usd": summary.saved_usd,
            "saved_share": summary.saved_share,
            "no_saving_reason": summary.no_saving_reason,  # why saved_share is null
            "why_no_saving": summary.why_no_saving,
        }
        if keys is not None:
            payload["by_key"] = [_key_as_json(key, key_budget) for key in keys]
        typer.echo(json.dumps(payload, indent=2))
        return
    _render(summary, since, baseline)
    if keys:
        _render_keys(keys, key_budget)


def _key_as_json(key: KeyStats, budget: float | None) -> dict[str, object]:
    return key.model_dump() | {"saved_usd": key.saved_usd, "daily_budget_usd": budget}


def _baseline_name(settings: Settings) -> str:
    """Each row was priced on the baseline of the gateway that served it: without that
    gateway's config file, its name is unknown here (it was said to be the strong tier's
    model when a config file had named gpt-4o; QA)."""
    if settings.baseline is not None:
        return settings.baseline.model
    if settings.from_file:
        return "the strong tier's model"
    return "the baseline the gateway priced them at; --config names it"


def requests(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many.")] = 20,
    config: Path | None = CONFIG_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    request_id: Annotated[
        str | None, typer.Option("--id", help="One request: an answer's x-request-id.")
    ] = None,
) -> None:
    """The latest requests: who answered, why, how fast, at what cost (newest first)."""
    from smallfirst.logs.stats import recent_requests

    if request_id is not None and not request_id.strip():
        fail("--id is empty: give an answer's x-request-id")
    path = _log_path(settings_or_exit(config).resolved_data_dir)
    with _reading(path):
        rows = recent_requests(path, limit, request_id)
    if request_id and not rows:
        fail(f"no request {request_id!r} in the log at {path}")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich import box
    from rich.table import Table

    from smallfirst.logs.costs import dollars

    console = output_console()
    # on a terminal the reasons wrap within its width; elsewhere lines end where they end
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, expand=console.is_terminal)
    for column in ("time", "asked", "answered", "status", "ms", "cost $"):
        table.add_column(column, no_wrap=True)
    table.add_column("why", ratio=1)
    for row in rows:
        answered = f"{row['model_answered'] or '-'} ({row['tier'] or '-'})"
        table.add_row(
            time.strftime("%m-%d %H:%M:%S", time.localtime(row["created_at"])),
            _as_logged(row["model_requested"]),
            _as_logged(answered),
            str(row["status"]),
            f"{row['latency_ms']:.0f}",
            dollars(row["cost_usd"]),
            _as_logged(row["route_reason"] or row["error_code"] or ""),
        )
    console.print(table)


def _as_logged(value: str) -> Text:
    """A logged value as a cell: its characters, never rich markup (any client names the
    model it asks for: `[/x]` made the command fail, `[link=...]` a link) nor what the
    terminal would act on (`\\x1b[2J` cleared the screen, a line break made a row up);
    those are shown escaped (`\\x1b`)."""
    from rich.text import Text

    return Text(_UNPRINTABLE.sub(_escaped, value))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _log_path(data_dir: Path) -> Path:
    from smallfirst.logs.store import LOG_FILE

    path = data_dir / LOG_FILE
    if data_dir.exists() and not data_dir.is_dir():  # it said "serve some requests first"
        fail(f"data_dir {data_dir} is not a directory: it holds no request log")
    if not path.exists():
        fail(f"no request log at {path}: serve some requests first (smallfirst serve)")
    if not path.is_file():
        fail(f"{path} is not a request log: it is not a file")
    return path


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """SQLite's errors as one line naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        from smallfirst.logs.store import open_error

        fail(open_error(path, exc))


def _parse_window(text: str) -> float | None:
    from smallfirst.logs.stats import parse_window

    try:
        return parse_window(text)
    except ValueError as exc:
        fail(f"--since: {exc}")


def _render(summary: Summary, since: str, baseline: str) -> None:
    from rich import box
    from rich.table import Table

    from smallfirst.logs.costs import dollars, signed_dollars

    console = output_console()
    window = "all time" if since == "all" else f"the last {since}"
    if not summary.requests:  # a page of zeros and dashes said no more
        wider = " (--since all: the whole log)"
        console.print(
            "No requests logged yet." if since == "all" else f"No requests in {window}{wider}."
        )
        return
    failed = ", ".join(f"{n} x {status}" for status, n in summary.failed_by_status.items())
    console.print(
        f"[bold]{counted(summary.requests, 'request')}[/] in {window}: {summary.answered} answered"
        + (f"; failed: {failed}" if failed else "")
    )
    on_failed = summary.failed_cost_usd
    console.print(
        f"Spent:    ${dollars(summary.cost_usd)}"
        + (f" (${dollars(on_failed)} of it on failed requests)" if on_failed else "")
    )
    baseline_cost = dollars(summary.baseline_cost_usd)
    console.print(f"Baseline: ${baseline_cost} (the same tokens on {baseline})")
    if summary.why_no_saving is not None:
        console.print(f"Saved:    unknown: {summary.why_no_saving}")
    else:
        over = ": more than the baseline" if summary.saved_usd < 0 else ""
        saved = signed_dollars(summary.saved_usd)
        console.print(f"Saved:    {saved} ({summary.saved_share:.1%}{over})")
    if summary.left_out_of_saving is not None:
        console.print(f"Left out of baseline and saving: {summary.left_out_of_saving}")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    for column, header in _TERMINAL_COLUMNS.items():
        table.add_column(header, justify="left" if column == "tier" else "right")
    for tier in summary.tiers:
        cells = tier.cells(summary.answered)
        table.add_row(*(cells[column] for column in _TERMINAL_COLUMNS))
    if summary.tiers:
        console.print(table)
    for router, tiers in summary.routed_by_router.items():
        split = ", ".join(f"{tier} {count}" for tier, count in tiers.items())
        console.print(f"Routed by {router}: {split}")
    console.print(f"Escalated or fell back: {counted(summary.escalated_requests, 'request')}")
    if summary.pii_actions:
        actions = ", ".join(f"{action} {n}" for action, n in summary.pii_actions.items())
        entities = ", ".join(f"{kind} {n}" for kind, n in summary.pii_entities.items())
        console.print(f"PII events: {actions} (entities: {entities})")
    else:
        console.print("PII events: none logged")


def _render_keys(keys: list[KeyStats], budget: float | None) -> None:
    """One row per API key id, the most spent first; with a per-key daily budget, today's
    spend against it."""
    from rich import box
    from rich.table import Table

    from smallfirst.logs.stats import KEY_ID_MEANING, KEY_TABLE_TITLE, key_columns

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    name, *figures = key_columns(budget)
    table.add_column(name)
    for header in figures:
        table.add_column(header, justify="right")
    for key in keys:
        key_id, *cells = key.cells(budget)
        table.add_row(_as_logged(key_id), *cells)
    console = output_console()
    console.print(f"{KEY_TABLE_TITLE} ({KEY_ID_MEANING}):")
    console.print(table)
