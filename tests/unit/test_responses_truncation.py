"""The Responses API's `truncation: "auto"` with fake backends (which refuse a prompt beyond
their `context_length`, counted as their `usage` counts it: words, and 4 a message): the
oldest turns go, as few as fit, and only when no model the request may go to takes it whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from smallfirst.types import ChatRequest
from tests.helpers import fake_backend, fake_client, fake_settings

WORDS = " ".join(["word"] * 20)  # a message of it and one more word: 25 tokens
EMAIL = "john.smith@example.com"


def gateway_with(tmp_path: Path, tiny: int, big: int) -> Iterator[tuple[TestClient, Gateway]]:
    settings = fake_settings(
        tmp_path,
        models=[
            {"id": "tiny", "tier": "edge", "backend": "fake", "context_length": tiny},
            {"id": "big", "tier": "cloud", "backend": "fake", "context_length": big},
        ],
    )
    client, gateway = fake_client(settings)
    with client:
        yield client, gateway


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    yield from gateway_with(tmp_path, tiny=100, big=130)


def turns(count: int) -> list[dict[str, Any]]:
    """`count` past turns (a user message and its answer, 50 tokens), then the question."""
    items: list[dict[str, Any]] = []
    for turn in range(count):
        items.append({"role": "user", "content": f"Q{turn} {WORDS}"})
        items.append({"role": "assistant", "content": f"A{turn} {WORDS}"})
    return [*items, {"role": "user", "content": "Now?"}]


def sent(gateway: Gateway, model: str) -> list[tuple[str, str]]:
    request = fake_backend(gateway, model).requests[-1]
    assert isinstance(request, ChatRequest)
    return [(m.role, m.text.split(" ")[0]) for m in request.messages]


def ask(client: TestClient, model: str, items: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"model": model, "input": items, "instructions": "Be brief.", **extra}
    return client.post("/v1/responses", json=body)


def test_a_local_model_gets_the_fewest_oldest_turns_dropped(
    small: tuple[TestClient, Gateway],
) -> None:
    """100 tokens: instructions (6), the question (5) and one past turn (50) fit, two do not."""
    client, gateway = small
    refused = ask(client, "tiny", turns(3))
    assert refused.status_code == 400
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
        "context_length_exceeded",
        "input",
    )
    response = ask(client, "tiny", turns(3), truncation="auto")
    assert response.status_code == 200
    assert sent(gateway, "tiny") == [
        ("system", "Be"),
        ("user", "Q2"),
        ("assistant", "A2"),
        ("user", "Now?"),
    ]
    body = response.json()
    assert body["truncation"] == "auto"
    assert body["usage"]["input_tokens"] == 6 + 25 + 25 + 5  # what was sent
    reason = body["smallfirst"]["reason"]
    assert "the prompt does not fit tiny whole" in reason
    assert "dropped its 4 oldest input items (2 turns)" in reason


def test_a_call_goes_with_its_output_and_developer_messages_stay(
    small: tuple[TestClient, Gateway],
) -> None:
    client, gateway = small
    items = [
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": f"Q0 {WORDS}"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": f"R0 {WORDS}"},
        {"role": "assistant", "content": "A0 done"},
        {"role": "user", "content": f"Q1 {WORDS}"},
        {"role": "assistant", "content": "A1 done"},
        {"role": "user", "content": "Now?"},
    ]
    response = ask(client, "tiny", items, truncation="auto")
    assert response.status_code == 200
    assert sent(gateway, "tiny") == [
        ("system", "Be"),
        ("developer", "Use"),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Now?"),
    ]
    assert "dropped its 4 oldest input items (1 turns)" in response.json()["smallfirst"]["reason"]


def test_what_fits_no_shorter_is_the_shortest_prompts_400(
    small: tuple[TestClient, Gateway],
) -> None:
    client, _ = small
    items = [*turns(2)[:-1], {"role": "user", "content": " ".join(["long"] * 120)}]
    refused = ask(client, "tiny", items, truncation="auto")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "(130 in the prompt" in error["message"]  # instructions and the question alone


def test_the_stored_conversation_stays_whole(small: tuple[TestClient, Gateway]) -> None:
    """A chain by `previous_response_id` (LangChain's `use_previous_response_id=True`) goes on
    past the context, and the store keeps every item, as OpenAI's does."""
    client, gateway = small
    previous = None
    for turn in range(4):
        asked = {"input": f"Q{turn} {WORDS}", "previous_response_id": previous}
        response = client.post(
            "/v1/responses",
            json={"model": "tiny", "truncation": "auto", **asked},
        )
        assert response.status_code == 200, response.text
        previous = response.json()["id"]
    answer = ("assistant", "This")
    assert sent(gateway, "tiny") == [("user", "Q1"), answer, ("user", "Q2"), answer, ("user", "Q3")]
    listed = client.get(f"/v1/responses/{previous}/input_items", params={"limit": 100}).json()
    assert len(listed["data"]) == 4 + 3  # every question, and every answer before the last


def test_auto_routing_takes_the_roomier_model_before_it_truncates(tmp_path: Path) -> None:
    for client, gateway in gateway_with(tmp_path, tiny=100, big=300):
        response = ask(client, "auto", turns(3), truncation="auto")
        assert response.status_code == 200
        assert response.json()["model"] == "big"
        assert len(sent(gateway, "big")) == 8  # whole
        assert "truncation" not in response.json()["smallfirst"]["reason"]


def test_a_remote_model_is_asked_again_a_few_times_at_most_and_guarded(
    small: tuple[TestClient, Gateway],
) -> None:
    """big (cloud) counts no tokens here: its 400s tell. Each call is guarded: the e-mail
    address in the kept question is redacted, the one in a dropped turn is not sent at all."""
    client, gateway = small
    items = turns(6)
    items[0]["content"] += f" {EMAIL}"
    items[-1]["content"] = f"Write to {EMAIL}?"
    big = fake_backend(gateway, "big")
    response = ask(client, "big", items, truncation="auto")
    assert response.status_code == 200
    assert len(big.requests) == 3  # whole, 3 of 6 turns dropped, 5 of 6 (one fits)
    last = big.requests[-1]
    assert isinstance(last, ChatRequest)
    sent_text = " ".join(m.text for m in last.messages)
    assert EMAIL not in sent_text
    assert "<EMAIL_ADDRESS_1>" in sent_text
    assert [role for role, _ in sent(gateway, "big")] == ["system", "user", "assistant", "user"]
    assert "dropped its 10 oldest input items (5 turns)" in response.json()["smallfirst"]["reason"]


def test_a_remote_model_gets_bounded_tries() -> None:
    from smallfirst.truncation import REMOTE_TRIES, remote_drops

    assert remote_drops(1) == [1]
    assert remote_drops(3) == [2, 3]
    assert remote_drops(20) == [10, 15, 18, 20]
    assert all(len(remote_drops(n)) <= REMOTE_TRIES for n in range(1, 200))


def test_a_remote_models_refused_tries_hold_no_budget(tmp_path: Path) -> None:
    """Each call to a remote model holds its estimate against the daily budget while it is
    under way; a 400 bills nothing, so its hold goes with it. Here the whole conversation's
    estimate ($0.00082 at big's prices) fits the budget, and with the next try's ($0.00049)
    held beside it the budget looked spent: a 429 after one refused call."""
    settings = fake_settings(
        tmp_path,
        models=[
            {"id": "tiny", "tier": "edge", "backend": "fake", "context_length": 100},
            {
                "id": "big",
                "tier": "cloud",
                "backend": "fake",
                "context_length": 130,
                "input_cost_per_1m": 2.0,
                "output_cost_per_1m": 8.0,
            },
        ],
        routing={"budget": {"daily_usd": 0.001}},
    )
    client, gateway = fake_client(settings)
    with client:
        response = ask(client, "big", turns(6), truncation="auto", max_output_tokens=20)
        assert response.status_code == 200, response.text
        assert len(fake_backend(gateway, "big").requests) == 3
        assert gateway.spend.exhausted(None) is None  # the answer's cost alone was spent


def test_a_truncated_answer_is_a_success_for_the_models_health(
    small: tuple[TestClient, Gateway],
) -> None:
    """As any answer, it ends a run of failures: one more failure does not cool big down."""
    client, gateway = small
    failures = gateway.settings.routing.circuit_breaker.failures
    for _ in range(failures - 1):
        gateway.health.failed("big", "upstream answered 500")
    assert ask(client, "big", turns(6), truncation="auto").status_code == 200
    gateway.health.failed("big", "upstream answered 500")
    assert gateway.health.cooling_down_s("big") == 0
