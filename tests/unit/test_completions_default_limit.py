"""/v1/completions without `max_tokens` (or with null) writes at most 16 tokens, OpenAI's
legacy default (vLLM's too); a remote upstream is told 16, as some have no such default. Chat
answers stay limited by the context only, as OpenAI's chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from starlette.testclient import TestClient

from smallfirst.types import TextRequest
from tests.helpers import chat_body, fake_client, fake_settings
from tests.unit.test_openai_compat import upstream

LONG_REPLY_TOKENS = 40
LONG_REPLY = " ".join(f"w{i}" for i in range(LONG_REPLY_TOKENS))  # a word a token (fake model)
UNSENT_OR_NULL = pytest.mark.parametrize(
    "limit", [{}, {"max_tokens": None}], ids=["unsent", "null"]
)
TEXT_ANSWER = {
    "choices": [{"text": "hello", "index": 0, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1},
}


@pytest.fixture
def long_api(tmp_path: Path) -> Iterator[TestClient]:
    model = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": [LONG_REPLY]}
    client, _ = fake_client(fake_settings(tmp_path, models=[model]))
    with client:
        yield client


@UNSENT_OR_NULL
def test_a_completion_without_max_tokens_writes_16_tokens(
    long_api: TestClient, limit: dict[str, Any]
) -> None:
    """It wrote until the context was full (the bundled 135M model: 8,160 tokens in 558 s)."""
    body = {"model": "tiny", "prompt": "Once upon", **limit}
    answer = long_api.post("/v1/completions", json=body).json()
    assert answer["usage"]["completion_tokens"] == 16
    assert answer["choices"][0]["finish_reason"] == "length"


def test_a_chat_answer_without_max_tokens_is_not_cut(long_api: TestClient) -> None:
    answer = long_api.post("/v1/chat/completions", json=chat_body()).json()
    assert answer["usage"]["completion_tokens"] == LONG_REPLY_TOKENS
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_a_limit_sent_is_kept(long_api: TestClient) -> None:
    """Larger than the default, and 0 to score a prompt (`echo`, as evaluation harnesses ask)."""
    longer = {"model": "tiny", "prompt": "Once upon", "max_tokens": 30}
    assert long_api.post("/v1/completions", json=longer).json()["usage"]["completion_tokens"] == 30
    scored = {**longer, "max_tokens": 0, "echo": True, "logprobs": 1}
    answer = long_api.post("/v1/completions", json=scored).json()
    assert answer["choices"][0]["text"] == "Once upon"
    assert answer["usage"]["completion_tokens"] == 0


@UNSENT_OR_NULL
async def test_a_remote_upstream_is_sent_max_tokens_16(limit: dict[str, Any]) -> None:
    """llama.cpp's server writes to the end of its context when told no limit."""
    sent: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        sent.append(await request.json())
        return web.json_response(TEXT_ANSWER)

    async with upstream(handle) as backend:
        await backend.complete(
            TextRequest.model_validate({"model": "cloud", "prompt": "Hi"} | limit)
        )
    assert [body["max_tokens"] for body in sent] == [16]
