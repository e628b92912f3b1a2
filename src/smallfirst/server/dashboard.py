"""`GET /dashboard`: the money, the routing split, latency and PII events as one HTML page,
and the money per API key where keys are in use.

Server-side HTML from the request log (`logs/stats.py`, the same numbers as `smallfirst
stats`), no scripts and no assets from elsewhere, so it works offline; it reloads itself every
15 s. Like /metrics it shows aggregates only (no prompts, no values); when API keys are
required it needs one too (`server/auth.py`). Models skipped now after failing in a row
(`routing/health.py`) are listed above the numbers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse

from smallfirst.errors import InvalidRequest
from smallfirst.logs.costs import dollars, signed_dollars
from smallfirst.logs.stats import (
    KEY_ID_MEANING,
    KEY_TABLE_TITLE,
    TIER_COLUMNS,
    KeyStats,
    Summary,
    key_columns,
    parse_window,
    summarize_by_key,
)
from smallfirst.logs.store import open_error

WINDOWS = ("1h", "24h", "7d", "all")
# Every text on the page is escaped; should one ever slip through (an upstream's error quoted
# in a skipped model's description), the browser runs no script, loads nothing and shows the
# page in no other site's frame.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
}

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d2430; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0 1.5rem; }
.card { border: 1px solid #d8dde6; border-radius: 8px; padding: .8rem 1.1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.6rem; }
.saved b { color: #17803d; }
.over b { color: #b42318; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { padding: .3rem .8rem; border-bottom: 1px solid #e4e7ec; text-align: right; }
th:first-child, td:first-child { text-align: left; }
nav a { margin-right: .8rem; }
.muted { color: #6b7280; }
.alert { border: 1px solid #e0a33b; background: #fff7e6; border-radius: 8px; padding: .6rem 1rem; }
"""


async def dashboard(request: Request) -> HTMLResponse:
    since_text = request.query_params.get("since", "24h")
    try:
        window_s = parse_window(since_text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    gateway = request.app.state.gateway
    log_path: Path | None = gateway.request_log.path if gateway.request_log else None
    if log_path is None:
        return _html(_page(since_text, "<p>This gateway keeps no request log.</p>"))
    try:
        summary, keys = await asyncio.to_thread(_summary_since, log_path, window_s)
    except sqlite3.DatabaseError as exc:  # a damaged log was a 500 and a traceback
        problem = f'<p class="alert">{escape(open_error(log_path, exc))}</p>'
        return _html(_page(since_text, problem), status_code=503)
    skipped = [gateway.health.describe(model) for model in gateway.health.snapshot()]
    by_key = _key_table(keys, gateway.settings.routing.budget.per_key_daily_usd)
    body = _body(summary, gateway.ledger.baseline.model, by_key)
    return _html(_page(since_text, _skipped(skipped) + body))


def _html(page: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)


def _skipped(descriptions: list[str]) -> str:
    if not descriptions:
        return ""
    items = "".join(f"<li>{escape(text)}</li>" for text in descriptions)
    return f'<div class="alert"><b>Skipped now</b> (fallbacks answer instead)<ul>{items}</ul></div>'


def _summary_since(path: Path, window_s: float | None) -> tuple[Summary, list[KeyStats]]:
    return summarize_by_key(path, None if window_s is None else time.time() - window_s)


def _page(since: str, body: str) -> str:
    links = " ".join(
        f'<a href="?since={w}">{"<b>" + w + "</b>" if w == since else w}</a>' for w in WINDOWS
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="15"><title>smallfirst</title>'
        f"<style>{_STYLE}</style></head><body><h1>smallfirst</h1>"
        f'<nav>Window: {links} <span class="muted">(window {escape(since)})</span></nav>'
        f"{body}</body></html>"
    )


def _body(summary: Summary, baseline: str, by_key: str) -> str:
    failed = sum(summary.failed_by_status.values())
    why_not = summary.why_no_saving
    on_failed = summary.failed_cost_usd
    spent = "at the answering models' prices" + (
        f"; ${dollars(on_failed)} on failed requests" if on_failed else ""
    )
    cards = [
        ("Requests", str(summary.requests), f"{summary.answered} answered, {failed} failed"),
        ("Spent", f"${dollars(summary.cost_usd)}", spent),
        ("Baseline", f"${dollars(summary.baseline_cost_usd)}", f"the same tokens on {baseline}"),
        (
            "Saved",
            "unknown" if why_not else signed_dollars(summary.saved_usd),
            _saved_note(summary),
        ),
    ]
    html = ['<div class="cards">']
    for title, value, note in cards:
        css = _saved_style(summary) if title == "Saved" else "card"
        html.append(
            f'<div class="{css}">{escape(title)}<b>{escape(value)}</b>'
            f'<span class="muted">{escape(note)}</span></div>'
        )
    html.append("</div>")
    if summary.left_out_of_saving is not None:
        left_out = f"Left out of baseline and saving: {summary.left_out_of_saving}"
        html.append(f'<p class="muted">{escape(left_out)}</p>')
    html.append(_tier_table(summary))
    html.append(by_key)
    html.append("<h2>Routing</h2><ul>")
    for router, tiers in summary.routed_by_router.items():
        split = ", ".join(f"{tier} {count}" for tier, count in tiers.items())
        html.append(f"<li>{escape(router)}: {escape(split)}</li>")
    html.append(f"<li>escalated or fell back: {summary.escalated_requests}</li></ul>")
    html.append("<h2>Privacy</h2><ul>")
    for action, count in summary.pii_actions.items():
        html.append(f"<li>{escape(action)}: {count}</li>")
    if not summary.pii_actions:
        html.append("<li>none logged</li>")
    for kind, count in summary.pii_entities.items():
        html.append(f'<li class="muted">{escape(kind)}: {count}</li>')
    html.append("</ul>")
    if summary.failed_by_status:
        statuses = ", ".join(f"{s}: {n}" for s, n in summary.failed_by_status.items())
        html.append(f"<p>Failed by status: {escape(statuses)}</p>")
    return "".join(html)


def _saved_note(summary: Summary) -> str:
    """The saving as a share of the baseline, or why there is none."""
    share = summary.saved_share
    if share is None:
        return summary.why_no_saving or ""
    return f"{share:.1%} of the baseline" if share >= 0 else f"{-share:.1%} more than the baseline"


def _saved_style(summary: Summary) -> str:
    """A saving in green; spending more than the baseline (a local model priced above it, a
    cascade's paid drafts) in red, as the cost it is."""
    over = summary.saved_share is not None and summary.saved_share < 0
    return "card over" if over else "card saved"


def _tier_table(summary: Summary) -> str:
    if not summary.tiers:
        return "<p>No answered requests in this window.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in TIER_COLUMNS)
    rows = [
        "<tr>"
        + "".join(f"<td>{escape(c)}</td>" for c in tier.cells(summary.answered).values())
        + "</tr>"
        for tier in summary.tiers
    ]
    return f"<h2>Tiers</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def _key_table(keys: list[KeyStats], budget: float | None) -> str:
    """Each API key's row, as `smallfirst stats --by-key` shows it; none on a gateway that
    sees no keys (its one row would be the keyless requests) and has no per-key budget."""
    if not keys or (budget is None and all(key.api_key_id is None for key in keys)):
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in key_columns(budget))
    rows = [
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in key.cells(budget)) + "</tr>"
        for key in keys
    ]
    return (
        f"<h2>{escape(KEY_TABLE_TITLE)}</h2>"
        f'<p class="muted">A key\'s id is {escape(KEY_ID_MEANING)}.</p>'
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )
