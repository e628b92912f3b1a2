"""`model: auto` at serve time: router decisions, overrides, fallbacks, budgets, cascade."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.fake import FakeReply
from smallfirst.errors import InvalidRequest, UpstreamTimeout
from smallfirst.logs import RequestRecord
from smallfirst.routing import base
from smallfirst.routing.base import Router
from smallfirst.routing.calibrate import Calibration, fit_calibration
from smallfirst.routing.data import row_from_record
from smallfirst.server import create_app
from smallfirst.service import Gateway
from tests.helpers import LOOPBACK, chat_body, fake_backend, fake_client, fake_settings
from tests.unit.routing_clients import (
    WORD_CODE,
    ask,
    beyond_the_grammar,
    big_answers_what_tiny_cannot_hold,
    routed_client,
    too_long,
)


class KeywordRouter(Router):
    """Scores 1.0 when the prompt says 'hard', else 0.0: a router whose verdict tests can pick."""

    name = "keyword"

    def score(self, messages: Sequence[Mapping[str, str]]) -> float:
        return 1.0 if "hard" in messages[-1]["content"] else 0.0


class RecordingRouter(KeywordRouter):
    """The keyword router, keeping what it was given."""

    name = "recording"
    seen: ClassVar[list[list[dict[str, str]]]] = []

    def score(self, messages: Sequence[Mapping[str, str]]) -> float:
        RecordingRouter.seen.append([dict(message) for message in messages])
        return super().score(messages)


@pytest.fixture(autouse=True)
def keyword_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.ROUTER_CLASSES, "keyword", f"{__name__}:KeywordRouter")
    monkeypatch.setitem(base.ROUTER_CLASSES, "recording", f"{__name__}:RecordingRouter")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from routed_client(tmp_path, {"router": "keyword"})


def test_router_decides_and_explains(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    easy, hard = ask(client, "hi"), ask(client, "a hard one")
    assert easy.json()["model"] == "tiny"
    assert hard.json()["model"] == "big"
    assert hard.headers["x-smallfirst-router"] == "keyword"
    assert hard.headers["x-smallfirst-route-score"] == "1.0000"
    assert hard.headers["x-smallfirst-route-threshold"] == "0.5000"
    info = hard.json()["smallfirst"]
    assert (info["router"], info["score"], info["threshold"]) == ("keyword", 1.0, 0.5)
    assert "-> strong" in info["reason"]


def test_a_zero_strong_share_has_no_threshold_in_body_or_headers(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    capped = ask(client, "a hard one", max_strong_share=0.0)
    assert capped.json()["model"] == "tiny"
    assert capped.json()["smallfirst"]["threshold"] is None
    assert "x-smallfirst-route-threshold" not in capped.headers  # was "inf"


def test_header_override_wins(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    body = chat_body("auto")
    forced = client.post("/v1/chat/completions", json=body, headers={"x-smallfirst-route": "cloud"})
    assert forced.json()["model"] == "big"
    via_body = client.post("/v1/chat/completions", json=chat_body("auto", route="edge"))
    assert via_body.json()["model"] == "tiny"
    bad = client.post("/v1/chat/completions", json=body, headers={"x-smallfirst-route": "moon"})
    assert bad.status_code == 400
    by_id = client.post(
        "/v1/chat/completions", json=chat_body("tiny"), headers={"x-smallfirst-route": "moon"}
    )
    assert by_id.status_code == 400  # a model asked for by id is not routed, but a typo is told
    onprem = client.post(
        "/v1/chat/completions", json=body, headers={"x-smallfirst-route": "onprem"}
    )
    reason = onprem.json()["smallfirst"]["reason"]
    assert reason == "route override: onprem; no onprem model configured, so tiny (edge) answers"


def test_failing_tier_falls_back_and_says_so(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue(UpstreamTimeout("big: upstream timed out"))
    response = ask(client, "a hard one")
    assert response.status_code == 200
    assert response.json()["model"] == "tiny"
    assert response.headers["x-smallfirst-escalations"] == "big"
    assert "; big failed (big: upstream timed out)" in response.json()["smallfirst"]["reason"]
    metrics = client.get("/metrics").text
    assert 'smallfirst_escalations_total{model="big"} 1.0' in metrics


def test_a_fallback_that_refuses_the_request_is_logged_as_its_own(
    api: tuple[TestClient, Any],
) -> None:
    """The row named the tier that had failed before it (cloud) and lost the escalation."""
    client, gateway = api
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    fake_backend(gateway, "big").queue(UpstreamTimeout("big: upstream timed out"))
    fake_backend(gateway, "tiny").queue(InvalidRequest("tiny: not for me"))
    assert ask(client, "a hard one").status_code == 400
    (record,) = records
    assert (record.tier, record.escalations) == ("edge", "big")


def test_after_shutdown_began_no_model_is_asked_and_none_falls_back(
    api: tuple[TestClient, Any],
) -> None:
    """A request still on its way to a model when the server stops (in the privacy guard,
    say) ends with the shutdown's 503: it started the model, or a paid fallback, after the
    answers under way had been ended."""
    client, gateway = api
    gateway.end_answers()
    response = ask(client, "a hard one")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "server_shutting_down"
    assert not fake_backend(gateway, "big").requests
    assert not fake_backend(gateway, "tiny").requests


def test_a_failed_tier_whose_fallback_cannot_hold_the_prompt_is_the_tiers_failure(
    api: tuple[TestClient, Any],
) -> None:
    """It was a 400 "reduce the length of the prompt", for a prompt the tier asked for holds."""
    client, gateway = api
    fake_backend(gateway, "big").queue(UpstreamTimeout("big: upstream timed out"))
    fake_backend(gateway, "tiny").queue(too_long())
    response = ask(client, "a hard one")
    assert response.status_code == 504
    assert "big: upstream timed out" in response.json()["error"]["message"]


def test_a_prompt_too_long_for_the_weak_choice_goes_up(
    api: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, gateway = api
    response = big_answers_what_tiny_cannot_hold(client, gateway, "an easy one, but long")
    assert "the prompt does not fit tiny, so it goes up" in response.json()["smallfirst"]["reason"]
    assert response.headers["x-smallfirst-escalations"] == "tiny"
    client.get("/metrics")  # the log writer catches up in the background
    gateway.request_log.close()
    rows = sqlite3.connect(tmp_path / "requests.db").execute("SELECT status FROM requests")
    assert [status for (status,) in rows] == [200]  # one request, one row


def test_a_schema_the_weak_choices_grammar_cannot_express_goes_up(
    api: tuple[TestClient, Any],
) -> None:
    """It was the local grammar's 400, with a cloud model configured that takes the schema;
    a tier the client named still answers for itself."""
    client, gateway = api
    tiny = fake_backend(gateway, "tiny")
    tiny.queue(beyond_the_grammar())
    response = ask(client, "an easy one", response_format=WORD_CODE)
    assert response.json()["model"] == "big"
    reason = response.json()["smallfirst"]["reason"]
    assert "tiny's grammar cannot express the schema, so it goes up" in reason
    tiny.queue(beyond_the_grammar())
    forced = ask(client, "easy", response_format=WORD_CODE, headers={"x-smallfirst-route": "edge"})
    assert forced.status_code == 400
    assert "not supported by the local grammar" in forced.json()["error"]["message"]


def test_what_the_client_chose_or_capped_is_not_lifted_for_a_long_prompt(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    tiny = fake_backend(gateway, "tiny")
    tiny.queue(too_long())
    forced = ask(client, "long", headers={"x-smallfirst-route": "edge"})
    tiny.queue(too_long())
    capped = ask(client, "long", max_strong_share=0.0)
    tiny.queue(too_long())
    private = ask(client, "long, from ana@example.org", privacy="local_only")  # PII: stays local
    for response in (forced, capped, private):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
    assert fake_backend(gateway, "big").requests == []


def test_quality_target_without_calibration_is_a_clear_400(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    response = ask(client, "hi", min_quality=0.9)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "min_quality"
    assert response.json()["error"]["message"] == (
        "min_quality needs a router with a calibration table (a learned artifact); this"
        " gateway's router 'keyword' has none: give max_strong_share instead, which every"
        " router meets"
    )


def test_a_strong_call_budget_holds_on_traffic_for_an_uncalibrated_router(
    tmp_path: Path,
) -> None:
    """`length` has no calibration table: the budget is met on the scores of recent requests.
    Prompt lengths run through 1..40 characters in a scrambled but fixed order."""
    for client, _ in routed_client(tmp_path, {"router": "length", "max_strong_share": 0.25}):
        answers = [ask(client, "x" * (1 + (i * 17) % 40)).json() for i in range(120)]
    warm = answers[40:]  # past the warm-up (default threshold) and one whole round of lengths
    strong = [a["model"] == "big" for a in warm]
    assert 0.15 <= sum(strong) / len(strong) <= 0.25
    assert (
        "threshold from recent traffic for a 25% strong-call budget"
        in (warm[-1]["smallfirst"]["reason"])
    )


def test_spent_budget_keeps_requests_local(tmp_path: Path) -> None:
    for client, _ in routed_client(tmp_path, {"router": "keyword", "budget": {"daily_usd": 1e-9}}):
        first = ask(client, "a hard one")
        assert first.json()["model"] == "big"  # the budget is not spent yet
        second = ask(client, "a hard one")
        assert second.json()["model"] == "tiny"
        assert "budget" in second.json()["smallfirst"]["reason"]
        by_id = client.post("/v1/chat/completions", json=chat_body("big"))
        assert by_id.status_code == 429  # a remote model asked for by id is not swapped: refused
        assert by_id.json()["error"]["code"] == "insufficient_quota"
        assert "daily budget" in by_id.json()["error"]["message"]
        assert client.post("/v1/chat/completions", json=chat_body("tiny")).status_code == 200


def test_requests_arriving_together_do_not_all_spend_the_last_of_the_budget(
    tmp_path: Path,
) -> None:
    """A call under way holds its estimate as spent: four at once all went to the paid model
    (a QA run: ten at once spent ten times a budget one paid for)."""
    budget = {"daily_usd": 1e-6}  # far less than one call of `big` may cost
    slow_big = {
        "id": "big",
        "tier": "cloud",
        "backend": "fake",
        "replies": ["one two three four"],
        "token_delay_s": 0.1,
        "output_cost_per_1m": 8.0,
    }
    tiny = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hello from tiny."]}
    settings = fake_settings(
        tmp_path, models=[tiny, slow_big], routing={"router": "keyword", "budget": budget}
    )
    client, gateway = fake_client(settings)
    with client, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ask(client, "a hard one").json(), range(4)))
        assert gateway.spend.exhausted(None)  # what the one paid call cost
        gateway.spend.config = gateway.spend.config.model_copy(update={"daily_usd": 1.0})
        assert gateway.spend.exhausted(None) is None  # the holds were released at the end
    assert sorted(answer["model"] for answer in answers) == ["big", "tiny", "tiny", "tiny"]


def test_observed_strong_share_metric(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    for text in ["hi", "hi", "hi", "a hard one"]:
        ask(client, text)
    metrics = client.get("/metrics").text
    assert "smallfirst_observed_strong_share 0.25" in metrics
    assert 'smallfirst_routed_total{router="keyword",tier="cloud"} 1.0' in metrics


def test_with_one_model_no_answer_counts_as_strong(tmp_path: Path) -> None:
    """The built-in config: the edge model is weak and strong at once, and nothing is ever
    escalated (the share read 1.0 there)."""
    models = [{"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hi."]}]
    settings = fake_settings(tmp_path, models=models, routing={"router": "keyword"})
    client, _ = fake_client(settings)
    with client:
        ask(client, "hi")
        ask(client, "a hard one")
        metrics = client.get("/metrics").text
    assert "smallfirst_observed_strong_share 0.0" in metrics


def test_cost_saved_compares_with_the_strong_model_or_the_configured_baseline(
    tmp_path: Path,
) -> None:
    for client, gateway in routed_client(tmp_path / "strong", {"router": "keyword"}):
        answer = ask(client, "hi").json()
        tokens = answer["usage"]
        would_cost = (tokens["prompt_tokens"] * 2.0 + tokens["completion_tokens"] * 8.0) / 1e6
        metrics = client.get("/metrics").text
        assert f"smallfirst_cost_saved_usd {would_cost}" in metrics
        assert f'smallfirst_baseline_cost_usd_total{{model="tiny",tier="edge"}} {would_cost}' in (
            metrics
        )
        gateway.request_log.close()
        row = sqlite3.connect(tmp_path / "strong" / "requests.db").execute(
            "SELECT cost_usd, baseline_cost_usd FROM requests"
        )
        assert row.fetchone() == (0.0, pytest.approx(would_cost))
    baseline = {"model": "gpt-4o", "input_cost_per_1m": 2.5, "output_cost_per_1m": 10.0}
    settings = fake_settings(tmp_path, routing={"router": "keyword"}, baseline=baseline)
    client, _ = fake_client(settings)
    with client:
        tokens = ask(client, "a hard one").json()["usage"]  # answered by big (2.0 / 8.0)
        paid = (tokens["prompt_tokens"] * 2.0 + tokens["completion_tokens"] * 8.0) / 1e6
        on_gpt4o = (tokens["prompt_tokens"] * 2.5 + tokens["completion_tokens"] * 10.0) / 1e6
        metrics = client.get("/metrics").text
        assert f"smallfirst_cost_saved_usd {on_gpt4o - paid}" in metrics


def test_reason_says_when_the_wanted_tier_is_missing(tmp_path: Path) -> None:
    only_edge = [{"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hi."]}]
    settings = fake_settings(tmp_path, routing={"router": "keyword"}, models=only_edge)
    client, _ = fake_client(settings)
    with client:
        info = ask(client, "a hard one").json()["smallfirst"]
    assert info["reason"] == (
        "score 1.000 >= 0.500 -> strong; no cloud model configured, so tiny (edge) answers"
    )


def test_the_router_is_loaded_while_the_server_warms_up(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, routing={"router": "keyword"})
    gateway = Gateway(settings)
    with TestClient(create_app(settings, gateway, warm_up=True), base_url=LOOPBACK) as client:
        for _ in range(200):  # bounded: the fake models load at once
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.01)
        assert client.get("/readyz").status_code == 200
        assert isinstance(gateway.routing.router, KeywordRouter)  # before any `auto` request


def test_a_long_prompt_kept_local_goes_to_the_roomier_local_tier(tmp_path: Path) -> None:
    three_tiers = [
        {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["tiny"]},
        {"id": "mid", "tier": "onprem", "backend": "fake", "replies": ["mid"]},
        {"id": "big", "tier": "cloud", "backend": "fake", "replies": ["big"]},
    ]
    settings = fake_settings(tmp_path, routing={"router": "keyword"}, models=three_tiers)
    client, gateway = fake_client(settings)
    with client:
        fake_backend(gateway, "tiny").queue(too_long())
        response = ask(client, "long, from ana@example.org", privacy="local_only")
    assert response.status_code == 200
    assert response.json()["model"] == "mid"  # up, but not to the cloud
    assert fake_backend(gateway, "big").requests == []


THREE_TIERS = [
    {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["tiny"]},
    {"id": "mid", "tier": "onprem", "backend": "fake", "replies": ["mid"]},
    {"id": "big", "tier": "cloud", "backend": "fake", "replies": ["big"]},
]


@pytest.mark.parametrize("router", ["keyword", "cascade"])
@pytest.mark.parametrize("why", ["pii", "budget"])
def test_a_strong_choice_kept_local_goes_to_the_onprem_tier(
    tmp_path: Path, router: str, why: str
) -> None:
    """QA: it went to the edge model, the first local tier, past the on-prem one that
    `fallbacks: {cloud: [onprem, edge]}` puts next; and the cascade did not escalate at all,
    saying "no stronger model configured"."""
    routing: dict[str, Any] = {"router": router}
    if why == "budget":
        routing["budget"] = {"daily_usd": 0.0}
    settings = fake_settings(tmp_path, routing=routing, models=THREE_TIERS)
    client, gateway = fake_client(settings)
    with client:
        fake_backend(gateway, "tiny").queue(FakeReply("Uh.", logprob=-4.0))  # the cascade's draft
        extra = {"privacy": "local_only"} if why == "pii" else {}
        response = ask(client, "a hard one, from ana@example.org", **extra)
    assert response.status_code == 200
    assert response.json()["model"] == "mid"
    assert fake_backend(gateway, "big").requests == []
    reason = response.json()["smallfirst"]["reason"]
    if router == "cascade":
        assert "escalates to mid when unsure" in reason
        assert "escalated: mean logprob -4.000" in reason
        assert response.headers["x-smallfirst-escalations"] == "tiny"
    else:  # what kept it local is named: a spent budget was said to be "policy"
        by = "the spent budget" if why == "budget" else "policy"
        assert f"-> strong; kept local by {by}, so mid (onprem) answers" in reason
        if why == "budget":
            assert reason.endswith("; local tiers only: daily budget $0 spent")


def test_a_request_kept_local_by_policy_and_a_spent_budget_names_both(tmp_path: Path) -> None:
    routing = {"router": "keyword", "budget": {"daily_usd": 0.0}}
    client, _ = fake_client(fake_settings(tmp_path, routing=routing, models=THREE_TIERS))
    with client:
        response = ask(client, "a hard one, from ana@example.org", privacy="local_only")
    reason = response.json()["smallfirst"]["reason"]
    assert "kept local by policy and the spent budget, so mid (onprem) answers" in reason
    assert reason.endswith(", daily budget $0 spent")


def test_a_strong_choice_kept_local_with_no_local_fallback_goes_to_the_first_local_tier(
    tmp_path: Path,
) -> None:
    """With `fallbacks: {cloud: []}` the cloud's chain names no local model: the request
    kept local goes to the first local tier there is, not to the cloud nor to an error."""
    routing = {"router": "keyword", "fallbacks": {"cloud": []}}
    settings = fake_settings(tmp_path, routing=routing, models=THREE_TIERS)
    client, gateway = fake_client(settings)
    with client:
        response = ask(client, "a hard one, from ana@example.org", privacy="local_only")
    assert response.status_code == 200
    assert response.json()["model"] == "tiny"
    assert fake_backend(gateway, "big").requests == []
    assert "kept local by policy, so tiny (edge) answers" in response.json()["smallfirst"]["reason"]


def test_a_streamed_text_completion_says_who_answered_and_why(
    api: tuple[TestClient, Any],
) -> None:
    """Chat streams carry the `smallfirst` field on their first event; text completion
    streams had it on none."""
    client, _ = api
    body = {"model": "auto", "prompt": "a hard one", "stream": True}
    response = client.post("/v1/completions", json=body)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if "{" in line]
    told = [event["smallfirst"] for event in events if "smallfirst" in event]
    assert len(told) == 1
    assert "smallfirst" in events[0]
    assert (told[0]["router"], told[0]["tier"], told[0]["score"]) == ("keyword", "cloud", 1.0)
    assert told[0]["reason"] == "score 1.000 >= 0.500 -> strong"


class CalibratedKeywordRouter(KeywordRouter):
    """The keyword router with a calibration table, as a learned artifact carries one."""

    name = "calibrated"

    @property
    def calibration(self) -> Calibration:
        return fit_calibration([0.0, 0.2, 0.6, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])


def test_a_calibrated_threshold_says_what_it_was_calibrated_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reason said only "score 1.000 >= 0.600 -> strong": not that the threshold came
    from the calibration for the request's knob (the traffic's reason says so)."""
    monkeypatch.setitem(base.ROUTER_CLASSES, "calibrated", f"{__name__}:CalibratedKeywordRouter")
    for client, _ in routed_client(tmp_path, {"router": "calibrated"}):
        share = ask(client, "a hard one", max_strong_share=0.5).json()["smallfirst"]
        both = ask(client, "a hard one", max_strong_share=0.25, min_quality=0.5).json()
        plain = ask(client, "a hard one").json()["smallfirst"]
    assert share["threshold"] == 0.6
    assert share["reason"] == (
        "score 1.000 >= 0.600 -> strong (calibrated threshold for a 50% strong-call budget)"
    )
    assert both["smallfirst"]["reason"] == (
        "score 1.000 >= 1.000 -> strong (calibrated threshold for a 25% strong-call budget"
        " and 50% of the weak->strong quality gap (the higher threshold of the two))"
    )
    assert plain["reason"] == "score 1.000 >= 0.500 -> strong"


def test_a_router_that_cannot_be_loaded_is_a_503_for_auto_and_models_by_id_still_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = tmp_path / "router-artifact"
    artifact.mkdir()  # the artifact's files gone since the start: not a router artifact now
    for client, _ in routed_client(tmp_path, {"router": str(artifact)}):
        routed = ask(client, "hi")
        by_id = client.post("/v1/chat/completions", json=chat_body("tiny"))
    assert routed.status_code == 503
    error = routed.json()["error"]
    assert error["code"] == "router_unavailable"
    assert str(tmp_path) not in error["message"]  # the server's paths stay in its log
    assert "is not a router artifact" in caplog.text
    assert by_id.status_code == 200


def test_the_router_reads_text_parts_as_its_training_data_has_them(tmp_path: Path) -> None:
    """Training data reads a message's text parts with a line break between them; at serve
    time the router got them glued ("kettledescaled?"), features its training never saw."""
    RecordingRouter.seen.clear()
    parts = [{"type": "text", "text": "When is the kettle"}, {"type": "text", "text": "descaled?"}]
    messages = [{"role": "user", "content": parts}]
    for client, _ in routed_client(tmp_path, {"router": "recording"}):
        response = client.post("/v1/chat/completions", json=chat_body("auto", messages=messages))
        assert response.status_code == 200
    trained_on = row_from_record({"messages": messages}, labels=False).messages
    assert RecordingRouter.seen == [list(trained_on)]
    assert trained_on[0]["content"] == "When is the kettle\ndescaled?"
