"""A batch of prompts on /v1/completions, with fake backends: how many go to a model at once,
and what the client is told when one prompt fails."""

from __future__ import annotations

import asyncio
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
