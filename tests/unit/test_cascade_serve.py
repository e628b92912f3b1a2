"""`model: auto` with the cascade: the small model answers first, and its own confidence
decides whether the answer is kept or a stronger model is asked."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.fake import FakeReply
from smallfirst.completions import TokenLogprob
from smallfirst.errors import InvalidRequest, QueueFull, UpstreamError, UpstreamTimeout
from smallfirst.routing.cascade import answer_logprobs
from smallfirst.types import TextRequest
from tests.helpers import fake_backend, fake_client, fake_settings
from tests.unit.routing_clients import (
    WORD_CODE,
    ask,
    beyond_the_grammar,
    big_answers_what_tiny_cannot_hold,
    routed_client,
    too_long,
)


@pytest.fixture
def cascade(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from routed_client(tmp_path, {"router": "cascade", "cascade": {"min_mean_logprob": -1.0}})


def test_cascade_keeps_a_confident_small_answer(cascade: tuple[TestClient, Any]) -> None:
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(FakeReply("Sure thing.", logprob=-0.1))
    response = ask(client, "hi")
    assert response.json()["model"] == "tiny"
    assert response.json()["choices"][0]["logprobs"] is None  # not asked for, not shown
    assert "kept" in response.json()["smallfirst"]["reason"]
    assert len(fake_backend(gateway, "big").requests) == 0


def test_cascade_escalates_an_unsure_answer_and_bills_both(
    cascade: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(FakeReply("Maybe forty?", logprob=-2.5))
    response = ask(client, "what is 6 x 7")
    assert response.json()["model"] == "big"
    assert response.headers["x-smallfirst-escalations"] == "tiny"
    assert "escalated" in response.json()["smallfirst"]["reason"]
    client.get("/metrics")  # any request: the log writer catches up in the background
    gateway.request_log.close()
    row = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute(
            "SELECT model_answered, escalations, cost_usd, prompt_tokens, completion_tokens"
            " FROM requests"
        )
        .fetchone()
    )
    answered, escalations, cost, prompt_tokens, completion_tokens = row
    assert (answered, escalations) == ("big", "tiny")
    assert cost == pytest.approx((prompt_tokens * 2.0 + completion_tokens * 8.0) / 1e6)


def test_cascade_answers_carry_the_small_models_unsureness_and_the_threshold(
    cascade: tuple[TestClient, Any],
) -> None:
    """Only the reason said them; the score and threshold headers were missing."""
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(FakeReply("Maybe forty?", logprob=-2.5))
    response = ask(client, "what is 6 x 7")
    assert float(response.headers["x-smallfirst-route-score"]) == pytest.approx(2.5)
    assert float(response.headers["x-smallfirst-route-threshold"]) == pytest.approx(1.0)
    assert response.json()["smallfirst"]["score"] == pytest.approx(2.5)


def test_a_cascade_under_no_strong_budget_never_escalates(
    cascade: tuple[TestClient, Any],
) -> None:
    """The budget was ignored: an unsure draft went up, and so did a prompt too long for the
    small model (a 400 for every other router)."""
    client, gateway = cascade
    tiny = fake_backend(gateway, "tiny")
    tiny.queue(FakeReply("Maybe forty?", logprob=-2.5))
    unsure = ask(client, "what is 6 x 7", max_strong_share=0.0)
    assert unsure.json()["model"] == "tiny"
    assert "a 0% strong-call budget: no escalation" in unsure.json()["smallfirst"]["reason"]
    tiny.queue(too_long())
    assert ask(client, "long", max_strong_share=0.0).status_code == 400
    assert fake_backend(gateway, "big").requests == []


def test_a_cascade_meets_a_strong_call_budget_on_recent_drafts(tmp_path: Path) -> None:
    """The unsurest quarter of recent drafts goes up, whatever the configured threshold."""
    routing = {"router": "cascade", "max_strong_share": 0.25, "cascade": {"min_mean_logprob": -9}}
    for client, gateway in routed_client(tmp_path, routing):
        tiny = fake_backend(gateway, "tiny")
        answers = []
        for i in range(80):
            tiny.queue(FakeReply("Maybe.", logprob=-0.1 * (1 + (i * 17) % 40)))
            answers.append(ask(client, "hmm").json())
    warm = answers[40:]  # past the warm-up (the configured threshold) and a round of scores
    escalated = [a["model"] == "big" for a in warm]
    assert 0.15 <= sum(escalated) / len(escalated) <= 0.3
    assert "against a 25% strong-call budget" in warm[-1]["smallfirst"]["reason"]


def test_drafts_with_nothing_to_judge_stay_within_the_strong_call_budget(tmp_path: Path) -> None:
    """A draft without logprobs (a weak upstream that sends none) is the unsurest of all, and
    it escalated even when the budget let none go up then (the reason said "none now"): such
    a weak tier sent every request strong against a 25% budget."""
    for client, gateway in routed_client(tmp_path, {"router": "cascade", "max_strong_share": 0.25}):
        tiny = fake_backend(gateway, "tiny")
        answers = []
        for _ in range(8):
            tiny.queue(FakeReply("Sure thing.", logprob=None))
            answers.append(ask(client, "hi").json())
    assert [a["model"] for a in answers].count("big") == 2  # a quarter, while warming up
    kept = answers[0]["smallfirst"]["reason"]
    assert kept.endswith(
        "kept: no token logprobs to judge (the model sends none), against a 25% strong-call"
        " budget (none now)"
    )


def test_a_quality_target_is_refused_by_the_cascade(cascade: tuple[TestClient, Any]) -> None:
    """It was accepted and did nothing."""
    client, _ = cascade
    response = ask(client, "hi", min_quality=0.9)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "min_quality"
    assert "calibrate-cascade --min-quality" in response.json()["error"]["message"]


def test_cascade_escalates_a_prompt_the_small_model_cannot_hold(
    cascade: tuple[TestClient, Any],
) -> None:
    client, gateway = cascade
    response = big_answers_what_tiny_cannot_hold(client, gateway, "a long contract to summarise")
    assert "escalated: the prompt does not fit tiny" in response.json()["smallfirst"]["reason"]


def test_cascade_escalates_a_schema_the_small_models_grammar_cannot_express(
    cascade: tuple[TestClient, Any],
) -> None:
    """`auto` answered a 400 naming the local grammar, with a cloud model configured that
    takes the schema (QA: a `pattern` with `\\b`, streamed or not)."""
    client, gateway = cascade
    tiny = fake_backend(gateway, "tiny")
    for stream in (False, True):
        tiny.queue(beyond_the_grammar())
        response = ask(client, "a code, please", response_format=WORD_CODE, stream=stream)
        assert response.status_code == 200
        assert response.headers["x-smallfirst-model"] == "big"
        assert response.headers["x-smallfirst-escalations"] == "tiny"
        assert "escalated: tiny's grammar cannot express the schema" in response.text
    assert len(fake_backend(gateway, "big").requests) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_small_model_that_refuses_logprobs_escalates_its_draft(
    cascade: tuple[TestClient, Any], stream: bool
) -> None:
    """The cascade asks the small model for the logprobs it judges the draft by; an upstream
    that refuses them (OpenAI's reasoning models: "Unsupported parameter: 'logprobs'") made
    the request a 400 about a field its client never sent."""
    client, gateway = cascade
    refusal = "tiny: Unsupported parameter: 'logprobs' is not supported with this model."
    fake_backend(gateway, "tiny").queue(
        InvalidRequest(refusal, param="logprobs", code="unsupported_parameter")
    )
    response = ask(client, "hi", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-smallfirst-model"] == "big"
    assert response.headers["x-smallfirst-escalations"] == "tiny"
    assert "; escalated: tiny refused the token logprobs its draft is judged by" in response.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_small_model_that_refused_logprobs_is_not_asked_for_a_draft_again(
    cascade: tuple[TestClient, Any], stream: bool
) -> None:
    """Asked again, it refuses again: each later request paid a 400 round trip to it before
    escalating for the same reason."""
    client, gateway = cascade
    tiny = fake_backend(gateway, "tiny")
    refusal = "tiny: Unsupported parameter: 'logprobs' is not supported with this model."
    tiny.queue(InvalidRequest(refusal, param="logprobs", code="unsupported_parameter"))
    first = ask(client, "hi", stream=stream)
    second = ask(client, "hello", stream=stream)
    assert len(tiny.requests) == 1
    assert second.status_code == 200
    assert second.headers["x-smallfirst-model"] == "big"
    why = "; escalated: tiny refused the token logprobs its draft is judged by (tiny: Unsupported"
    assert why in first.text
    assert why in second.text
    assert "x-smallfirst-escalations" not in second.headers  # not tried: not asked


def test_a_remembered_refusal_still_answers_a_client_asking_for_logprobs_its_400(
    cascade: tuple[TestClient, Any],
) -> None:
    """The refusal is the client's to see when it asks for logprobs itself."""
    client, gateway = cascade
    refusal = InvalidRequest("tiny: logprobs are not supported", param="logprobs")
    fake_backend(gateway, "tiny").queue(refusal, refusal)
    assert ask(client, "hi").status_code == 200
    response = ask(client, "hi", logprobs=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"
    assert len(fake_backend(gateway, "tiny").requests) == 2


def test_logprobs_the_client_asked_for_are_its_own_to_fix(
    cascade: tuple[TestClient, Any],
) -> None:
    """A refusal of the client's own `logprobs` stays its 400, as with any other router."""
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(
        InvalidRequest("tiny: logprobs are not supported", param="logprobs")
    )
    response = ask(client, "hi", logprobs=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"
    assert fake_backend(gateway, "big").requests == []


def test_cascade_streams_the_kept_or_escalated_answer(cascade: tuple[TestClient, Any]) -> None:
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(
        FakeReply("Sure thing.", logprob=-0.1), FakeReply("Uh.", logprob=-4.0)
    )
    kept = ask(client, "hi", stream=True)
    escalated = ask(client, "hmm", stream=True)
    assert kept.headers["x-smallfirst-model"] == "tiny"
    assert '"content":" thing."' in kept.text
    assert escalated.headers["x-smallfirst-model"] == "big"
    assert '"content":" big."' in escalated.text
    assert kept.text.endswith("data: [DONE]\n\n")
    assert escalated.text.endswith("data: [DONE]\n\n")


def test_cascade_with_one_model_asks_it_once(tmp_path: Path) -> None:
    only_edge = [{"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hi."]}]
    settings = fake_settings(tmp_path, routing={"router": "cascade"}, models=only_edge)
    client, gateway = fake_client(settings)
    with client:
        fake_backend(gateway, "tiny").queue(FakeReply("Uh.", logprob=-4.0))
        response = ask(client, "hmm")
    assert response.json()["model"] == "tiny"
    assert "no stronger model configured" in response.json()["smallfirst"]["reason"]
    assert len(fake_backend(gateway, "tiny").requests) == 1


def test_a_cascade_kept_local_with_no_stronger_local_model_says_so(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, routing={"router": "cascade", "budget": {"daily_usd": 0}})
    client, _ = fake_client(settings)
    with client:
        response = ask(client, "hmm")
    assert response.json()["model"] == "tiny"
    reason = response.json()["smallfirst"]["reason"]
    assert reason.startswith("tiny answers; no stronger local model to escalate to; local tiers")


def test_the_cascade_judges_the_answer_not_an_echoed_prompt(
    cascade: tuple[TestClient, Any],
) -> None:
    """`echo` puts the prompt's tokens first: they were judged as the answer's, so a prompt
    scored with `max_tokens: 0` (evaluation harnesses) was always escalated, and paid for."""
    client, gateway = cascade
    prompt = "Paris is the capital of"
    words = ["Paris", " is", " the", " capital", " of"]
    echoed = [TokenLogprob(token=t, logprob=None if t == "Paris" else -6.0) for t in words]
    answer = [TokenLogprob(token=t, logprob=-0.2) for t in [" France", "."]]
    request = TextRequest(model="auto", prompt=prompt, echo=True, logprobs=0)
    assert answer_logprobs(echoed + answer, request) == answer
    unechoed = request.model_copy(update={"echo": False})
    assert answer_logprobs(echoed + answer, unechoed) == echoed + answer
    body = {"model": "auto", "prompt": prompt, "echo": True, "max_tokens": 0, "logprobs": 1}
    fake_backend(gateway, "tiny").queue(FakeReply(" France.", logprob=-3.0))  # the prompt's
    scored = client.post("/v1/completions", json=body)
    assert scored.status_code == 200
    assert scored.json()["model"] == "tiny"
    assert scored.json()["choices"][0]["text"] == prompt
    assert "kept: max_tokens 0 asks for no answer to judge" in scored.json()["smallfirst"]["reason"]
    assert fake_backend(gateway, "big").requests == []


@pytest.mark.parametrize("empty", ["", "  \n"])
@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/completions"])
def test_an_empty_draft_is_escalated_for_what_it_is(
    cascade: tuple[TestClient, Any], empty: str, endpoint: str
) -> None:
    """An empty draft said "mean logprob -inf, min -inf, 0 tokens" (QA); and one whose
    tokens had logprobs (blank text, or a completion's end token, -0.26) was kept: "What is
    17 times 23?" was answered "" (QA)."""
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(FakeReply(empty, logprob=-0.1))
    question = "What is 17 times 23?"
    body = {"model": "auto", "messages": [{"role": "user", "content": question}]}
    if endpoint == "/v1/completions":
        body = {"model": "auto", "prompt": question}
    response = client.post(endpoint, json=body)
    assert response.json()["model"] == "big"
    assert "; escalated: the draft is empty" in response.json()["smallfirst"]["reason"]


def test_the_cascades_reason_holds_its_threshold(tmp_path: Path) -> None:
    """The request log keeps the threshold inside the reason only (README), and a cascade's
    reason had none: "kept: mean logprob -0.100, min -0.100, 2 tokens"."""
    cascade = {"min_mean_logprob": -1.0, "min_token_logprob": -5.0}
    for client, gateway in routed_client(tmp_path, {"router": "cascade", "cascade": cascade}):
        fake_backend(gateway, "tiny").queue(FakeReply("Sure thing.", logprob=-0.1))
        kept = ask(client, "hi").json()["smallfirst"]["reason"]
        fake_backend(gateway, "tiny").queue(FakeReply("Uh.", logprob=-2.0))
        budget = ask(client, "hmm", max_strong_share=1.0).json()["smallfirst"]["reason"]
        fake_backend(gateway, "tiny").queue(FakeReply("Uh.", logprob=-2.0))
        capped = ask(client, "hmm", max_strong_share=0.01).json()["smallfirst"]["reason"]
    assert kept.endswith(
        "kept: mean logprob -0.100, min -0.100, 2 tokens (threshold: mean logprob -1.000, min"
        " -5.000)"
    )
    assert budget.endswith(
        "escalated: mean logprob -2.000, min -2.000, 1 tokens, against a 100% strong-call"
        " budget (threshold: mean logprob -1.000)"
    )
    assert capped.endswith("against a 1% strong-call budget (none now)")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_unsure_draft_answers_a_prompt_the_strong_model_says_is_too_long(
    cascade: tuple[TestClient, Any], stream: bool
) -> None:
    """The small model answered the prompt, so a stronger model that cannot hold it leaves
    the draft to answer: it was a 400 context_length_exceeded, telling the client to shorten
    a prompt that had an answer."""
    client, gateway = cascade
    fake_backend(gateway, "tiny").queue(FakeReply("Maybe seven.", logprob=-3.0))
    fake_backend(gateway, "big").queue(too_long())
    response = ask(client, "what is 3 + 4", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-smallfirst-model"] == "tiny"
    assert response.headers["x-smallfirst-escalations"] == "big"
    assert "Maybe" in response.text
    assert "the prompt does not fit big; so tiny's draft answers" in response.text


@pytest.mark.parametrize(
    ("draft_failure", "asked"),
    [(UpstreamTimeout("tiny: upstream timed out"), 1), (QueueFull("tiny is busy"), 2)],
    ids=["broken", "busy"],
)
def test_a_small_model_whose_draft_failed_is_not_asked_again_down_the_chain(
    cascade: tuple[TestClient, Any], draft_failure: Exception, asked: int
) -> None:
    """The strong model's fallback chain holds the small model too: one that failed the
    draft was asked again after the strong model failed (a timed-out upstream given the
    request twice, `tiny,big,tiny` tried). A busy one may have a slot by then."""
    client, gateway = cascade
    tiny = fake_backend(gateway, "tiny")
    tiny.queue(draft_failure, FakeReply("Hello again.", logprob=-0.1))
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500: boom"))
    response = ask(client, "hi")
    assert len(tiny.requests) == asked
    assert response.status_code == (502 if asked == 1 else 200)


def test_a_remote_small_model_drafts_nothing_when_the_spent_budget_keeps_requests_local(
    tmp_path: Path,
) -> None:
    """A cascade whose small model is remote (`weak_tier: cloud`) still sent it the draft,
    and every `auto` request was a 429 "ask ... `auto`" while a local model could answer."""
    routing = {"router": "cascade", "weak_tier": "cloud", "budget": {"daily_usd": 1e-9}}
    client, gateway = fake_client(fake_settings(tmp_path, routing=routing))
    with client:
        assert ask(client, "hi").json()["model"] == "big"  # the budget is not spent yet
        response = ask(client, "hello")
    assert response.status_code == 200
    assert response.json()["model"] == "tiny"
    assert "tiny answers; no stronger local model" in response.json()["smallfirst"]["reason"]
    assert len(fake_backend(gateway, "big").requests) == 1


def test_a_remote_small_model_drafts_nothing_the_privacy_policy_keeps_local(
    tmp_path: Path,
) -> None:
    """PII that the policy keeps off the cloud was a 400 `pii_blocked` from the remote
    draft, where the local model may answer it."""
    routing = {"router": "cascade", "weak_tier": "cloud"}
    privacy = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    client, gateway = fake_client(fake_settings(tmp_path, routing=routing, privacy=privacy))
    with client:
        response = ask(client, "My email is john.smith@example.com, write to me")
    assert response.status_code == 200
    assert response.json()["model"] == "tiny"
    assert fake_backend(gateway, "big").requests == []
