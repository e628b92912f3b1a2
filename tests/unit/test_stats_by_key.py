"""`smallfirst stats --by-key`: each API key's requests, spend and saving, and today's spend
against the per-key daily budget, as the budget counts it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.logs.spend import DAY_S, utc_day
from smallfirst.logs.stats import summarize, summarize_by_key

TODAY = utc_day() * DAY_S + 1  # a second into the current UTC day: today, and in the past
YESTERDAY = TODAY - 3600


def row(
    number: int, key: str | None, cost: float, created_at: float, **fields: Any
) -> RequestRecord:
    base: dict[str, Any] = {
        "id": str(number),
        "created_at": created_at,
        "endpoint": "chat",
        "model_requested": "auto",
        "model_answered": "big",
        "tier": "cloud",
        "api_key_id": key,
        "cost_usd": cost,
        "baseline_cost_usd": cost * 4,
    }
    return RequestRecord(**(base | fields))


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    log = RequestLog(tmp_path / "requests.db")
    for record in (
        row(1, "aaaaaaaaaaaa", 0.25, TODAY),
        row(2, "aaaaaaaaaaaa", 1.0, TODAY, status=502, error_code="upstream_error"),
        row(3, "aaaaaaaaaaaa", 2.0, YESTERDAY),  # in the window, not in today's budget
        row(4, "bbbbbbbbbbbb", 0.5, YESTERDAY),
        row(5, None, 0.125, TODAY),
        row(6, None, 0.125, TODAY),
    ):
        log.record(record)
    log.close()
    path = tmp_path / "requests.db"
    connection = sqlite3.connect(path)
    with connection:  # as migration 0005 leaves a row logged before baselines were
        connection.execute("UPDATE requests SET baseline_cost_usd = NULL WHERE id = '6'")
    connection.close()
    return path


def test_each_key_has_its_requests_spend_saving_and_today(log_path: Path) -> None:
    summary, keys = summarize_by_key(log_path)
    assert summary == summarize(log_path)
    by_id = {key.api_key_id: key for key in keys}
    assert [key.api_key_id for key in keys] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", None]
    a, b, keyless = by_id["aaaaaaaaaaaa"], by_id["bbbbbbbbbbbb"], by_id[None]
    assert (a.requests, a.cost_usd, a.today_usd) == (3, 3.25, 1.25)  # failed attempts are paid
    assert a.saved_usd == pytest.approx(3 * 3.25)
    assert (b.requests, b.cost_usd, b.today_usd) == (1, 0.5, 0.0)
    assert (keyless.requests, keyless.cost_usd, keyless.today_usd) == (2, 0.25, 0.25)
    assert keyless.saved_usd == pytest.approx(0.5 - 0.125)  # the unknown baseline left out


def test_a_key_that_spent_today_is_listed_for_a_window_it_sent_nothing_in(log_path: Path) -> None:
    _, keys = summarize_by_key(log_path, since=TODAY + 10)
    assert [(key.api_key_id, key.requests, key.today_usd) for key in keys] == [
        ("aaaaaaaaaaaa", 0, 1.25),
        (None, 0, 0.25),
    ]


def cli(tmp_path: Path, *args: str, budget: float | None = None) -> Any:
    config: dict[str, Any] = {"data_dir": str(tmp_path)}
    if budget is not None:
        config["routing"] = {"budget": {"per_key_daily_usd": budget}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["stats", "--config", str(path), "--since", "all", *args])
    assert result.exit_code == 0, result.output
    return result


def test_json_adds_the_keys_and_the_budget_leaving_the_rest_as_it_was(
    log_path: Path, tmp_path: Path
) -> None:
    plain = json.loads(cli(tmp_path, "--json", budget=1.0).output)
    assert "by_key" not in plain
    with_keys = json.loads(cli(tmp_path, "--json", "--by-key", budget=1.0).output)
    assert with_keys.pop("by_key")[0] == {
        "api_key_id": "aaaaaaaaaaaa",
        "requests": 3,
        "cost_usd": 3.25,
        "baseline_cost_usd": 13.0,
        "baseline_unknown_cost_usd": 0.0,
        "today_usd": 1.25,
        "saved_usd": 9.75,
        "daily_budget_usd": 1.0,
    }
    assert with_keys == plain
    unbudgeted = json.loads(cli(tmp_path, "--json", "--by-key").output)
    assert unbudgeted["by_key"][2]["api_key_id"] is None
    assert unbudgeted["by_key"][2]["daily_budget_usd"] is None


def test_the_table_shows_today_against_the_budget_and_names_keyless_requests(
    log_path: Path, tmp_path: Path
) -> None:
    lines = cli(tmp_path, "--by-key", budget=1.0).output.splitlines()
    header = next(line for line in lines if "reqs" in line and "API key" in line)
    assert " ".join(header.split()) == "API key reqs spent $ saved today $ of 1.0000 (UTC)"
    assert next(line for line in lines if "aaaaaaaaaaaa" in line).split() == [
        "aaaaaaaaaaaa",
        "3",
        "3.2500",
        "$9.7500",
        "1.2500",
        "(125%,",
        "spent)",
    ]
    assert next(line for line in lines if "(no key)" in line).split()[-2:] == ["0.2500", "(25%)"]
    unbudgeted = cli(tmp_path, "--by-key").output
    assert "bbbbbbbbbbbb" in unbudgeted
    assert "today $ (UTC)" in unbudgeted
    assert "API key" not in cli(tmp_path).output


def dashboard(tmp_path: Path, budget: float | None = None) -> str:
    from tests.helpers import fake_client, fake_settings

    routing = {} if budget is None else {"budget": {"per_key_daily_usd": budget}}
    client, _ = fake_client(fake_settings(tmp_path, routing=routing))
    with client:
        page = client.get("/dashboard?since=all")
    assert page.status_code == 200
    return page.text


def test_the_dashboard_shows_each_key_as_stats_by_key_does(log_path: Path, tmp_path: Path) -> None:
    html = dashboard(tmp_path, budget=1.0)
    head = "".join(f"<th>{h}</th>" for h in ("API key", "reqs", "spent $", "saved"))
    assert "<h2>By API key</h2>" in html
    assert f"<tr>{head}<th>today $ of 1.0000 (UTC)</th></tr>" in html
    cells = ("aaaaaaaaaaaa", "3", "3.2500", "$9.7500", "1.2500 (125%, spent)")
    assert "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" in html
    assert "<td>(no key)</td><td>2</td><td>0.2500</td><td>$0.3750</td><td>0.2500 (25%)</td>" in html
    assert "<th>today $ (UTC)</th>" in dashboard(tmp_path)  # keys, no budget: still shown


def test_the_dashboard_has_no_key_table_without_keys_unless_a_key_budget_is_set(
    tmp_path: Path,
) -> None:
    log = RequestLog(tmp_path / "requests.db")
    log.record(row(1, None, 0.5, TODAY))
    log.close()
    assert "By API key" not in dashboard(tmp_path)
    budgeted = dashboard(tmp_path, budget=2.0)
    assert "<td>(no key)</td><td>1</td><td>0.5000</td><td>$1.5000</td><td>0.5000 (25%)</td>" in (
        budgeted
    )


def test_the_dashboard_escapes_a_key_id(tmp_path: Path) -> None:
    """The ids come from the log file, which anything that can write to it can fill."""
    log = RequestLog(tmp_path / "requests.db")
    log.record(row(1, "<script>x</script>", 0.5, TODAY))
    log.close()
    html = dashboard(tmp_path)
    assert "<td>&lt;script&gt;x&lt;/script&gt;</td>" in html
    assert "<script>" not in html
