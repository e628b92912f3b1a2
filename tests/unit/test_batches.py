"""A batch of prompts on /v1/completions, with fake backends: how many go to a model at once,
and what the client is told when one prompt fails."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.errors import UpstreamError
from smallfirst.service import Gateway
from smallfirst.types import GenerateRequest
from tests.helpers import fake_backend


def most_at_once(gateway: Gateway, model_id: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[the most prompts `model_id` was answering at once]: each answer takes a moment."""
    backend = fake_backend(gateway, model_id)
    answer_of = backend.complete
    answering, most = 0, [0]

    async def complete(request: GenerateRequest) -> Any:
        nonlocal answering
        answering += 1
        most[0] = max(most[0], answering)
        try:
            await asyncio.sleep(0.05)
            return await answer_of(request)
        finally:
            answering -= 1

    monkeypatch.setattr(backend, "complete", complete)
    return most


def test_a_batch_sends_a_model_no_more_prompts_at_once_than_it_has_slots(
    api: tuple[TestClient, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate was the largest local model's slots for every model: a batch of 6 to a model
    of 1 slot and a queue of 1 beside one of 4 slots was a 429 on an idle gateway."""
    client, gateway = api
    monkeypatch.setattr(fake_backend(gateway, "tiny"), "slots_in_use", lambda: (0, 1))
    monkeypatch.setattr(fake_backend(gateway, "big"), "slots_in_use", lambda: (0, 4))
    tiny = most_at_once(gateway, "tiny", monkeypatch)
    big = most_at_once(gateway, "big", monkeypatch)
    for model in ("tiny", "big"):
        body = {"model": model, "prompt": ["a", "b", "c", "d", "e", "f"]}
        assert client.post("/v1/completions", json=body).status_code == 200
    assert (tiny, big) == ([1], [4])


def test_the_batch_error_names_the_prompt_that_failed(api: tuple[TestClient, Gateway]) -> None:
    """One prompt among several too long, blocked or unreadable was a 400 about "prompt"."""
    client, _ = api  # 300 is no token of the fake byte tokenizer
    body = {"model": "tiny", "prompt": [[72], [73], [300]]}
    error = client.post("/v1/completions", json=body).json()["error"]
    assert error["param"] == "prompt.2"
    assert error["message"] == "prompt 2 of the batch: a byte tokenizer has tokens 0 to 255"


def test_an_error_shared_by_requests_is_named_for_each_batch_alone(
    api: tuple[TestClient, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shutdown ends every answer with one error: it is not renamed in place."""
    client, gateway = api
    shared = UpstreamError("big broke")

    async def complete(request: GenerateRequest) -> Any:
        raise shared

    monkeypatch.setattr(fake_backend(gateway, "big"), "complete", complete)
    for _ in range(2):
        response = client.post("/v1/completions", json={"model": "big", "prompt": ["a", "b"]})
        assert response.status_code == 502
        assert response.json()["error"]["message"] == "prompt 0 of the batch: big broke"
    assert (shared.message, shared.param) == ("big broke", None)


def test_a_streamed_batch_streams_each_prompts_choices_under_their_openai_index(
    api: tuple[TestClient, Gateway],
) -> None:
    """It was a 400 ("stream one prompt at a time"); OpenAI streams a list of prompts, prompt
    p's choice i as index p * n + i."""
    client, _ = api
    body = {
        "model": "tiny",
        "prompt": ["a", "b"],
        "n": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    events = [json.loads(payload) for payload in payloads[:-1]]
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for choice in (choice for event in events for choice in event["choices"]):
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert texts == dict.fromkeys(range(4), "Hello from tiny.")
    assert finishes == dict.fromkeys(range(4), "stop")
    assert events[-1]["choices"] == []
    whole = client.post("/v1/completions", json={**body, "stream": False, "stream_options": None})
    assert events[-1]["usage"] == whole.json()["usage"]
