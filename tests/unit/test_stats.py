"""`smallfirst stats`: the request log summed up, checked against hand-computed figures."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.logs.costs import dollars
from smallfirst.logs.stats import summarize

NOW = time.time()


def record(number: int, **fields: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "id": str(number),
        "created_at": NOW - 60,
        "endpoint": "chat",
        "model_requested": "auto",
    }
    return RequestRecord(**(base | fields))


def edge(number: int, latency_ms: float, **fields: Any) -> RequestRecord:
    return record(
        number,
        model_answered="tiny",
        tier="edge",
        router="rules",
        prompt_tokens=100,
        completion_tokens=10,
        latency_ms=latency_ms,
        baseline_cost_usd=0.001,
        **fields,
    )


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    log = RequestLog(tmp_path / "requests.db")
    rows = [
        edge(1, 100.0, ttft_ms=20.0),
        edge(2, 200.0, ttft_ms=40.0),
        edge(3, 300.0, pii_entities='{"PERSON": 2}', pii_action="local_only"),
        edge(4, 400.0, escalations="big", pii_entities='{"EMAIL_ADDRESS": 1}', pii_action="redact"),
        record(
            5,
            model_answered="big",
            tier="cloud",
            router="rules",
            prompt_tokens=50,
            completion_tokens=20,
            latency_ms=900.0,
            cost_usd=0.0004,
            baseline_cost_usd=0.0004,
        ),
        record(6, tier="cloud", status=502, error_code="upstream_error", cost_usd=0.0001),
        record(7, status=404, model_requested="nope"),
        record(8, model_answered="tiny", tier="edge", router="none", created_at=NOW - 3 * 86400),
    ]
    for row in rows:
        log.record(row)
    log.close()
    return tmp_path / "requests.db"


def test_summary_adds_up_money_routing_latency_and_privacy(log_path: Path) -> None:
    summary = summarize(log_path, since=NOW - 86400)  # row 8 is three days old
    assert (summary.requests, summary.answered) == (7, 5)
    assert summary.failed_by_status == {"404": 1, "502": 1}
    edge_tier, cloud_tier = summary.tiers
    assert (edge_tier.tier, edge_tier.requests) == ("edge", 4)
    assert (edge_tier.prompt_tokens, edge_tier.completion_tokens) == (400, 40)
    assert edge_tier.latency_p50_ms == pytest.approx(250.0)  # between 200 and 300
    assert edge_tier.latency_p95_ms == pytest.approx(385.0)  # 300 + 0.85 * 100
    assert edge_tier.ttft_p50_ms == pytest.approx(30.0)
    # the failed upstream attempt is the cloud's cost too, not its request
    assert (cloud_tier.requests, cloud_tier.cost_usd) == (1, pytest.approx(0.0005))
    assert cloud_tier.ttft_p50_ms is None
    # the bill includes the failed upstream attempt; the baseline only what was answered
    assert summary.cost_usd == pytest.approx(0.0005)
    assert summary.failed_cost_usd == pytest.approx(0.0001)
    assert sum(t.requests for t in summary.tiers) == summary.answered
    assert sum(t.cost_usd for t in summary.tiers) == pytest.approx(summary.cost_usd)
    assert summary.baseline_cost_usd == pytest.approx(0.0044)
    assert summary.saved_usd == pytest.approx(0.0039)
    assert summary.saved_share == pytest.approx(0.0039 / 0.0044)
    assert summary.routed_by_router == {"rules": {"edge": 4, "cloud": 1}}
    assert summary.escalated_requests == 1
    assert summary.pii_actions == {"local_only": 1, "redact": 1}
    assert summary.pii_entities == {"EMAIL_ADDRESS": 1, "PERSON": 2}


def test_all_time_includes_old_rows_and_an_empty_window_is_zero(log_path: Path) -> None:
    assert summarize(log_path).requests == 8
    empty = summarize(log_path, since=NOW + 10)
    assert (empty.requests, empty.tiers, empty.saved_share) == (0, [], None)
    assert empty.why_no_saving == "no requests in this window"
    assert empty.no_saving_reason == "no_requests"


def test_an_empty_window_is_said_in_a_line(log_path: Path, tmp_path: Path) -> None:
    """It was a page of zeros ending in "Saved: - (no chat or completion tokens were answered
    in this window)"."""
    empty = cli(tmp_path, "--since", "1m")  # the fixture's rows are older
    assert empty.exit_code == 0, empty.output
    assert empty.output == "No requests in the last 1m (--since all: the whole log).\n"
    new = tmp_path / "new"
    new.mkdir()
    RequestLog(new / "requests.db").close()
    assert cli(new, "--since", "all").output == "No requests logged yet.\n"


def test_a_client_that_left_counts_as_answered_only_once_a_model_had_it(tmp_path: Path) -> None:
    """Left before routing, no tier answered it: counted so, the tiers' shares were short."""
    log = RequestLog(tmp_path / "requests.db")
    log.record(edge(1, 100.0))
    log.record(edge(2, 5.0, status=499, ttft_ms=4.0))  # cut while streaming
    log.record(record(3, status=499))  # left while its prompt was scanned
    log.close()
    summary = summarize(tmp_path / "requests.db")
    assert (summary.requests, summary.answered) == (3, 2)
    assert summary.failed_by_status == {"499": 1}
    [tier] = summary.tiers
    assert (tier.tier, tier.requests) == ("edge", 2)
    # its 5 ms is no answer's latency (clients stopping early made a tier look fast); its
    # first token came, so that time counts
    assert (tier.latency_p50_ms, tier.latency_p95_ms, tier.ttft_p50_ms) == (100.0, 100.0, 4.0)


def test_a_tier_whose_clients_all_left_has_no_latency(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.db")
    log.record(edge(1, 5.0, status=499))
    log.close()
    [tier] = summarize(tmp_path / "requests.db").tiers
    assert (tier.requests, tier.latency_p50_ms, tier.latency_p95_ms) == (1, None, None)
    assert tier.cells(1)["p50 ms"] == "-"


def test_a_window_of_embeddings_only_does_not_blame_the_baseline_price(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.db")
    log.record(record(1, model_answered="all-minilm-l6-v2", tier="embeddings", prompt_tokens=7))
    log.close()
    summary = summarize(tmp_path / "requests.db")
    assert summary.why_no_saving == "no chat or completion tokens were answered in this window"
    assert summary.no_saving_reason == "no_generated_tokens"


def log_from_before_baselines(path: Path, costs: list[float]) -> None:
    """A log as a version before the baseline column left it, a request per cost."""
    connection = sqlite3.connect(path, isolation_level=None)
    migrations = Path(__file__).parents[2] / "src/smallfirst/logs/migrations"
    connection.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name in ("0001_requests", "0002_routing_and_privacy"):
        connection.executescript((migrations / f"{name}.sql").read_text())
        connection.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
    for number, cost in enumerate(costs):
        connection.execute(
            "INSERT INTO requests (id, created_at, endpoint, model_requested, tier, status, stream,"
            " latency_ms, prompt_tokens, cost_usd) VALUES (?, ?, 'chat', 'm', 'cloud', 200, 0,"
            " 5.0, 10, ?)",
            (f"old-{number}", NOW - 60, cost),
        )
    connection.close()


def test_a_log_from_before_the_baseline_column_is_migrated(tmp_path: Path) -> None:
    log_from_before_baselines(tmp_path / "requests.db", [0.0])
    summary = summarize(tmp_path / "requests.db")
    assert (summary.answered, summary.baseline_cost_usd) == (1, 0.0)
    assert (summary.baseline_unknown_requests, summary.saved_share) == (1, None)
    assert summary.why_no_saving == "no request in this window has a known baseline"
    assert summary.no_saving_reason == "no_known_baseline"


def test_requests_from_before_baselines_are_left_out_of_the_saving(tmp_path: Path) -> None:
    """After an upgrade they counted as spent with no baseline: the saving was negative."""
    path = tmp_path / "requests.db"
    log_from_before_baselines(path, [0.05, 0.05, 0.0])
    log = RequestLog(path)
    for number, (cost, baseline) in enumerate([(0.05, 0.05), (0.0, 0.071)]):
        log.record(record(number, tier="cloud", cost_usd=cost, baseline_cost_usd=baseline))
    log.close()
    summary = summarize(path)
    assert (summary.requests, summary.baseline_unknown_requests) == (5, 3)
    assert (summary.cost_usd, summary.baseline_unknown_cost_usd) == (
        pytest.approx(0.15),
        pytest.approx(0.1),
    )
    assert summary.baseline_cost_usd == pytest.approx(0.121)
    assert summary.saved_usd == pytest.approx(0.071)  # was -0.029: 0.121 - 0.15
    assert summary.saved_share == pytest.approx(0.071 / 0.121)
    text = cli(tmp_path, "--since", "all")
    assert text.exit_code == 0, text.output
    assert "Spent:    $0.1500\n" in text.output
    assert "Saved:    $0.0710 (58.7%)\n" in text.output
    assert (
        "Left out of baseline and saving: 3 requests logged before smallfirst recorded baselines"
        " ($0.1000 of the spend)"
    ) in text.output
    as_json = json.loads(cli(tmp_path, "--since", "all", "--json").output)
    assert (as_json["baseline_unknown_requests"], as_json["saved_usd"]) == (3, pytest.approx(0.071))


def cli(tmp_path: Path, *args: str) -> Any:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    return CliRunner().invoke(app, ["stats", "--config", str(config), *args])


def test_stats_command_prints_the_saving_and_the_split(log_path: Path, tmp_path: Path) -> None:
    text = cli(tmp_path)
    assert text.exit_code == 0, text.output
    assert "7 requests in the last 24h: 5 answered; failed: 1 x 404, 1 x 502" in text.output
    assert "Spent:    $0.00050 ($0.00010 of it on failed requests)" in text.output
    assert "Saved:    $0.0039 (88.6%)" in text.output
    assert "Routed by rules: edge 4, cloud 1" in text.output
    assert "(the same tokens on the strong tier's model)" in text.output
    as_json = json.loads(cli(tmp_path, "--since", "all", "--json").output)
    assert as_json["requests"] == 8
    assert as_json["saved_usd"] == pytest.approx(0.0039)


def test_one_request_is_counted_as_one(tmp_path: Path) -> None:
    """It said "1 requests in the last 24h" and "Escalated or fell back: 1 requests"."""
    log = RequestLog(tmp_path / "requests.db")
    log.record(edge(1, 100.0, escalations="big"))
    log.close()
    text = cli(tmp_path)
    assert text.exit_code == 0, text.output
    assert "1 request in the last 24h: 1 answered" in text.output
    assert "Escalated or fell back: 1 request\n" in text.output


def test_without_a_config_file_the_baseline_is_not_named(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows were priced on the serving gateway's baseline (gpt-4o, say): without its
    config file that name is unknown, and "the strong tier's model" was a guess."""
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(log_path.parent))
    monkeypatch.delenv("SMALLFIRST_CONFIG", raising=False)
    text = CliRunner().invoke(app, ["stats"])
    assert text.exit_code == 0, text.output
    assert "(the same tokens on the baseline the gateway priced them at; --config names it)" in (
        text.output
    )


def test_stats_command_refuses_a_bad_window_and_a_missing_log(tmp_path: Path) -> None:
    missing = cli(tmp_path)
    assert missing.exit_code == 2
    assert "no request log" in missing.output
    (tmp_path / "requests.db").touch()
    bad = cli(tmp_path, "--since", "yesterday")
    assert bad.exit_code == 2
    assert "--since: a window looks like 30m, 24h or 7d" in bad.output
    endless = cli(tmp_path, "--since", "9" * 400 + "d", "--json")  # was "since": -Infinity
    assert endless.exit_code == 2
    assert "is longer than any log; use 'all'" in endless.output
    empty = cli(tmp_path, "--since", "0.0m")  # was "0 requests in the last 0.0m"
    assert empty.exit_code == 2
    assert "'0.0m' is an empty window" in empty.output


def test_dashboard_page_shows_the_saving_split_and_privacy(tmp_path: Path) -> None:
    from tests.helpers import chat_body, fake_client, fake_settings

    settings = fake_settings(tmp_path, routing={"router": "length"})
    client, gateway = fake_client(settings)
    with client:
        for _ in range(3):
            client.post("/v1/chat/completions", json=chat_body("auto"))
        client.post("/v1/chat/completions", json=chat_body("auto", temperature=9))
        for _ in range(50):  # the log writer flushes every 0.2 s
            if summarize(gateway.request_log.path).requests == 4:
                break
            time.sleep(0.1)
        page = client.get("/dashboard")
        bad = client.get("/dashboard?since=forever")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<b>4</b>" in html  # requests
    assert "3 answered, 1 failed" in html
    assert "the same tokens on big" in html  # no baseline configured: the strong model
    assert "length: edge 3" in html
    assert "<td>edge</td><td>3</td><td>100.0%</td>" in html
    assert "100.0% of the baseline" in html  # all answered on the free edge model
    assert "<li>none logged</li>" in html  # no PII in these requests
    assert bad.status_code == 400
    assert "window looks like" in bad.json()["error"]["message"]


def test_the_dashboard_lets_browsers_run_no_script_on_it_nor_frame_it(tmp_path: Path) -> None:
    """Its texts are escaped; the page also says so to the browser, should one slip through
    (it quotes skipped models' failures)."""
    from tests.helpers import fake_client, fake_settings

    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        page = client.get("/dashboard")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


def test_requests_command_lists_the_latest_first_with_the_reason(
    log_path: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    listed = CliRunner().invoke(app, ["requests", "-c", str(config), "-n", "3", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert len(rows) == 3
    assert [row["created_at"] for row in rows] == sorted(
        (row["created_at"] for row in rows), reverse=True
    )
    reason = "score 0.709 >= 0.700 -> strong; local tiers only: PII (PERSON x2) stays on premises"
    log = RequestLog(log_path)
    log.record(record(9, model_answered="qwen2.5-coder-1.5b", tier="onprem", route_reason=reason))
    log.close()
    table = CliRunner().invoke(app, ["requests", "-c", str(config)])
    assert table.exit_code == 0, table.output
    assert "upstream_error" in table.output  # a failed row shows its error code as the reason
    assert reason in table.output  # piped, a table keeps whole lines (not 80 columns)
    assert "qwen2.5-coder-1.5b (onprem)" in table.output


def test_requests_command_finds_one_request_by_its_id(log_path: Path, tmp_path: Path) -> None:
    """An answer's `x-request-id` finds its row; a batch's id finds a row per prompt."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    log = RequestLog(log_path)
    for position in range(2):
        log.record(record(10, id=f"10-{position}", model_answered="tiny", tier="edge"))
    log.close()

    def ids(request_id: str) -> list[str]:
        found = CliRunner().invoke(
            app, ["requests", "-c", str(config), "--json", "--id", request_id]
        )
        assert found.exit_code == 0, found.output
        return sorted(row["id"] for row in json.loads(found.output))

    assert ids("1") == ["1"]  # not "10-0"
    assert ids("10") == ["10-0", "10-1"]
    missing = CliRunner().invoke(app, ["requests", "-c", str(config), "--id", "nope"])
    assert missing.exit_code != 0
    assert "no request 'nope' in the log" in missing.output


def test_a_dashboard_leaves_out_requests_from_before_baselines_and_says_so(
    tmp_path: Path,
) -> None:
    from tests.helpers import fake_client, fake_settings

    log_from_before_baselines(tmp_path / "requests.db", [0.05])
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        html = client.get("/dashboard?since=all").text
    assert "no request in this window has a known baseline" in html
    assert (
        "Left out of baseline and saving: 1 request logged before smallfirst recorded baselines"
        " ($0.0500 of the spend)"
    ) in html


def test_piped_requests_lines_are_as_wide_as_their_content(log_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    reason = "score 0.709 >= 0.700 -> strong; " * 6 + "the longest reason"
    log = RequestLog(log_path)
    log.record(record(9, created_at=NOW, model_answered="big", tier="cloud", route_reason=reason))
    log.close()
    for args in (["-n", "3"], ["--id", "9"]):
        table = CliRunner().invoke(app, ["requests", "-c", str(config), *args])
        assert table.exit_code == 0, table.output
        lines = table.stdout.splitlines()
        assert any(line.endswith(reason) for line in lines)  # whole, not cut
        assert [line for line in lines if line != line.rstrip()] == []
        assert max(map(len, lines)) < len(reason) + 100  # not padded to 10,000 columns
    summary = cli(tmp_path)
    assert [line for line in summary.stdout.splitlines() if line != line.rstrip()] == []


@pytest.mark.parametrize(
    ("make_log", "message"),
    [
        (
            lambda path: path.write_text("not sqlite"),
            "is not a request log (file is not a database): move it aside, with its -wal and"
            " -shm files if any, to start a new log",
        ),
        (lambda path: path.mkdir(), "is not a request log: it is not a file"),
    ],
)
@pytest.mark.parametrize("command", ["stats", "requests"])
def test_a_file_that_is_not_a_request_log_is_named(
    tmp_path: Path, command: str, make_log: Any, message: str
) -> None:
    make_log(tmp_path / "requests.db")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    result = CliRunner().invoke(app, [command, "-c", str(config)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'requests.db'} {message}\n"


@pytest.mark.parametrize("command", ["stats", "requests"])
def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path, command: str) -> None:
    """It said "no request log at FILE/requests.db: serve some requests first", and serve
    refuses that data dir."""
    data_dir = tmp_path / "data"
    data_dir.write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir)}))
    result = CliRunner().invoke(app, [command, "-c", str(config)])
    assert result.exit_code == 2
    assert (
        result.stderr == f"Error: data_dir {data_dir} is not a directory: it holds no request log\n"
    )


def test_requests_takes_any_count_but_refuses_an_empty_id(log_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    base = ["requests", "-c", str(config), "--json"]
    everything = CliRunner().invoke(app, [*base, "-n", "99999999999999999999"])
    assert everything.exit_code == 0, everything.output
    assert len(json.loads(everything.stdout)) == 8
    empty = CliRunner().invoke(app, [*base, "--id", ""])
    assert empty.exit_code == 2
    assert empty.stderr == "Error: --id is empty: give an answer's x-request-id\n"


@pytest.mark.parametrize(
    ("amount", "printed"),
    [
        (0.0, "0.0000"),
        (0.000042, "0.000042"),
        (0.0012, "0.0012"),
        (0.01, "0.0100"),
        (0.15, "0.1500"),
        (12.5, "12.5000"),
        (-0.5, "-0.5000"),  # a saving is negative where the baseline is the cheaper model
        (-0.000042, "-0.000042"),
    ],
)
def test_amounts_below_a_cent_keep_two_significant_digits(amount: float, printed: str) -> None:
    """QA: a cut stream's $0.000042 read as $0.0000 spent, on failed requests too."""
    assert dollars(amount) == printed


def test_requests_command_shows_what_clients_named_as_text(log_path: Path, tmp_path: Path) -> None:
    """Any client names the model it asks for, and an unknown one is logged as named: rich
    markup in it made the table fail (`[/x]`) or a link, and terminal escapes reached the
    terminal (`\\x1b[2J` cleared it; a line break made up a row)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    named = ["[/x]", "[link=https://evil.example]click[/link]", "\x1b[2J\x1b[31mred", "a\nb\u202e"]
    log = RequestLog(log_path)
    for number, model in enumerate(named, start=20):
        log.record(record(number, status=404, model_requested=model, created_at=NOW + number))
    log.close()
    table = CliRunner().invoke(app, ["requests", "-c", str(config), "-n", "4"])
    assert table.exit_code == 0, table.output
    assert "[/x]" in table.output
    assert "[link=https://evil.example]click[/link]" in table.output
    assert "\x1b" not in table.output
    assert "\u202e" not in table.output
    assert "\\x1b[2J\\x1b[31mred" in table.output
    assert "a\\x0ab\\u202e" in table.output


def test_a_summary_taken_while_a_gateway_logs_adds_up(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stats` beside a busy `serve`: each of its queries read the log anew, so the tiers held
    more requests than were answered (shares over 100%) and their costs did not add up to
    the spend (seen on 5 of 12 runs against a process logging ~1,000 rows a second)."""
    from smallfirst.logs import stats as stats_module

    gateway = sqlite3.connect(log_path, isolation_level=None)
    logged = iter(range(100, 200))

    def log_a_request_before_each_query(statement: str) -> None:
        if "FROM requests" in statement:  # as another process would, between two queries
            gateway.execute(
                "INSERT INTO requests (id, created_at, endpoint, model_requested, tier, status,"
                " stream, latency_ms, cost_usd) VALUES (?, ?, 'chat', 'auto', 'cloud', 200, 0,"
                " 5.0, 0.5)",
                (str(next(logged)), NOW),
            )

    def traced_connect(path: Path) -> sqlite3.Connection:
        connection = real_connect(path)
        connection.set_trace_callback(log_a_request_before_each_query)
        return connection

    real_connect = stats_module.connect
    monkeypatch.setattr(stats_module, "connect", traced_connect)
    summary = summarize(log_path)
    gateway.close()
    assert sum(tier.requests for tier in summary.tiers) == summary.answered
    assert sum(tier.cost_usd for tier in summary.tiers) == pytest.approx(summary.cost_usd)


def test_a_window_whose_only_requests_failed_after_being_paid_has_no_share(
    tmp_path: Path,
) -> None:
    """QA: an upstream stream cut off (502) was the window's only request. It was paid, so
    its tier was listed, and the tier's share of 0 answered requests divided by zero:
    `smallfirst stats` crashed and /dashboard answered 500."""
    log = RequestLog(tmp_path / "requests.db")
    cut = {"model_answered": "big", "tier": "cloud", "status": 502, "stream": True}
    log.record(record(1, **cut, prompt_tokens=5, completion_tokens=1, cost_usd=0.000009))
    log.close()
    [tier] = summarize(tmp_path / "requests.db").tiers
    assert (tier.tier, tier.requests, tier.cells(0)["share"]) == ("cloud", 0, "-")
    text = cli(tmp_path)
    assert text.exit_code == 0, text.output
    assert "1 request in the last 24h: 0 answered; failed: 1 x 502" in text.output
    assert "$0.0000090 of it on failed requests" in text.output


def test_requests_command_shows_a_cost_below_a_cent_as_stats_does(
    tmp_path: Path,
) -> None:
    """QA: an on-prem answer's $0.0000028 read 0.00000 in `smallfirst requests`, a paid
    request shown as free (`stats` keeps two significant digits below a cent)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    log = RequestLog(tmp_path / "requests.db")
    log.record(record(1, model_answered="m", tier="onprem", cost_usd=0.0000042))
    log.close()
    table = CliRunner().invoke(app, ["requests", "-c", str(config)])
    assert table.exit_code == 0, table.output
    assert " 0.0000042" in table.output
    assert "0.00000\n" not in table.output


def test_a_large_window_is_summed_by_sqlite_reading_the_table_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA, 200,000 rows: the tiers' rows were read into Python to sum them (the GIL held,
    /dashboard in a thread kept /healthz waiting: its p99 went from 3 to 75 ms), and each
    query of a window holding most of the log looked its rows up one by one from an index
    (`stats --since 7d` 3.1 s, 1.1 s reading the table through)."""
    from smallfirst.logs import stats as stats_module

    path = tmp_path / "requests.db"
    log = RequestLog(path)
    for number in range(300):  # 10 days, a row every 48 minutes
        tier = ("edge", "cloud", "onprem")[number % 3]
        log.record(record(number, tier=tier, latency_ms=number, created_at=NOW - number * 2880))
    log.close()
    statements: list[str] = []

    def traced_connect(log_path: Path) -> sqlite3.Connection:
        connection = real_connect(log_path)
        connection.set_trace_callback(statements.append)
        return connection

    real_connect = stats_module.connect
    monkeypatch.setattr(stats_module, "connect", traced_connect)
    for since, edge_rows in [(None, range(0, 300, 3)), (NOW - 7 * 86400 + 1, range(0, 210, 3))]:
        statements.clear()
        summary = summarize(path, since)
        p95 = statistics.quantiles(edge_rows, n=100, method="inclusive")[94]
        assert (summary.tiers[0].tier, summary.tiers[0].latency_p95_ms) == ("edge", p95)
        reader = sqlite3.connect(path)
        for statement in (s for s in statements if "FROM requests" in s):
            assert len(reader.execute(statement).fetchall()) <= 3, statement  # figures, not rows
            plan = " ".join(step[3] for step in reader.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "USING INDEX" not in plan, (statement, plan)  # a covering index only
        reader.close()
