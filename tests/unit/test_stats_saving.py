"""What `smallfirst stats` and the dashboard say of the saving: why there is none, and a
saving below zero (the requests cost more than the baseline would have)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smallfirst.logs import RequestLog
from smallfirst.logs.stats import summarize
from tests.helpers import chat_body, eventually, fake_client, fake_settings
from tests.unit.test_stats import cli, edge


def test_stats_json_says_why_there_is_no_saved_share(tmp_path: Path) -> None:
    """`saved_share: null` said nothing of why, where the text output did: a program could
    not tell an empty window from a baseline without a price."""
    log = RequestLog(tmp_path / "requests.db")
    log.record(edge(1, 100.0))  # a minute old
    log.close()
    empty = json.loads(cli(tmp_path, "--since", "1m", "--json").output)
    assert (empty["saved_share"], empty["no_saving_reason"]) == (None, "no_requests")
    assert empty["why_no_saving"] == "no requests in this window"
    shown = json.loads(cli(tmp_path, "--json").output)
    assert (shown["no_saving_reason"], shown["why_no_saving"]) == (None, None)
    free = tmp_path / "free"
    free.mkdir()
    log = RequestLog(free / "requests.db")
    log.record(edge(1, 100.0).model_copy(update={"baseline_cost_usd": 0.0}))
    log.close()
    unpriced = json.loads(cli(free, "--json").output)
    assert (unpriced["saved_share"], unpriced["no_saving_reason"]) == (None, "unpriced_baseline")


def a_log_that_cost_more_than_its_baseline(tmp_path: Path) -> Path:
    """A local model priced above the baseline: $0.00003 spent where the baseline is
    $0.00001, a saving of -$0.000020."""
    log = RequestLog(tmp_path / "requests.db")
    log.record(edge(1, 100.0, cost_usd=0.00003).model_copy(update={"baseline_cost_usd": 0.00001}))
    log.close()
    return tmp_path / "requests.db"


def test_stats_shows_a_negative_saving_as_a_cost(tmp_path: Path) -> None:
    """It read "Saved:    $-0.000020"."""
    a_log_that_cost_more_than_its_baseline(tmp_path)
    text = cli(tmp_path)
    assert text.exit_code == 0, text.output
    assert "Saved:    -$0.000020 (-200.0%: more than the baseline)\n" in text.output


def test_a_dashboard_shows_a_negative_saving_as_a_cost(tmp_path: Path) -> None:
    """It read "$-0.000020" in the green of a saving."""
    from tests.helpers import fake_client, fake_settings

    a_log_that_cost_more_than_its_baseline(tmp_path)
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        html = client.get("/dashboard").text
    assert '<div class="card over">Saved<b>-$0.000020</b>' in html
    assert "200.0% more than the baseline" in html
    assert "$-" not in html


@pytest.mark.parametrize(
    ("amount", "printed"), [(0.0012, "$0.0012"), (-0.0012, "-$0.0012"), (0.0, "$0.0000")]
)
def test_a_signed_amount_puts_its_minus_before_the_dollar(amount: float, printed: str) -> None:
    from smallfirst.logs.costs import signed_dollars

    assert signed_dollars(amount) == printed


def test_stats_on_free_models_says_how_to_see_a_saving(tmp_path: Path) -> None:
    """The first stats of the bundled model said "Saved:    - (the baseline had no price ...)"."""
    log = RequestLog(tmp_path / "requests.db")
    free = edge(1, 100.0).model_copy(update={"baseline_cost_usd": 0.0})
    log.record(free)
    log.close()
    text = cli(tmp_path).output
    assert "Saved:    unknown: the baseline had no price when these requests were logged;" in text
    assert "set config `baseline` to the model you would pay for otherwise" in text


def test_a_dashboard_whose_baseline_is_free_says_how_to_price_it(tmp_path: Path) -> None:
    only_edge = [{"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hi."]}]
    client, gateway = fake_client(fake_settings(tmp_path, models=only_edge))
    with client:
        client.post("/v1/chat/completions", json=chat_body())
        assert eventually(lambda: summarize(gateway.request_log.path).requests == 1)
        html = client.get("/dashboard").text
    assert "the same tokens on tiny" in html
    assert "Saved<b>unknown</b>" in html  # not "$0.0000", nor less than nothing
    assert "the baseline had no price when these requests were logged; set config" in html
