"""A greedy answer streamed is the answer whole: text, finish reason, usage and logprobs, with
characters that take several tokens and stop sequences that split them, from the bundled
model and from a remote tier (a second gateway whose upstream is the first)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, cloud_model, start_server

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m"
# Greedy, the bundled model goes on with "蓝色是一种葨色色的葨": 蓝, 色 and 葨 take three
# tokens each, 种 two.
CJK_PROMPT = "中文：天空为什么是蓝色的？答："


@pytest.fixture(scope="module")
def relay(gateway: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose only model is the bundled one of `gateway`, as a remote tier."""
    config = {"models": [cloud_model("remote", gateway, MODEL)]}
    server = start_server(config, tmp_path_factory.mktemp("relay"))
    yield server
    server.stop()


def _whole(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return {"usage": response.json()["usage"], **choice}


def _streamed(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The streamed choice joined as a client joins it: texts, logprobs lists, last finish."""
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(f"{server.url}{path}", json=streamed, timeout=60)
    assert response.status_code == 200, response.text
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line[6:7] == "{"]
    joined: dict[str, Any] = {"text": "", "logprobs": None, "finish_reason": None}
    for event in events:
        if event.get("usage"):
            joined["usage"] = event["usage"]
        for choice in event["choices"]:
            joined["text"] += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
            joined["finish_reason"] = choice["finish_reason"] or joined["finish_reason"]
            if choice["logprobs"]:
                joined["logprobs"] = _joined_logprobs(joined["logprobs"], choice["logprobs"])
    return joined


def _joined_logprobs(so_far: dict[str, Any] | None, piece: dict[str, Any]) -> dict[str, Any]:
    if so_far is None:
        return piece
    return {key: so_far[key] + value for key, value in piece.items() if value is not None}


def _counts(usage: dict[str, Any]) -> tuple[int, int]:
    """Tokens read and written (the second of two requests finds its prompt kept: cached)."""
    return usage["prompt_tokens"], usage["completion_tokens"]


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 5},  # ends inside a character
        {"max_tokens": 24, "stop": ["色色的", "色色"]},  # stops that are prefixes of each other
        {"max_tokens": 8, "stop": ["是一"]},  # a stop completed by the last token allowed
    ],
)
def test_text_completion_streamed_is_the_whole_one(gateway: Server, fields: dict[str, Any]) -> None:
    body = {"model": MODEL, "prompt": CJK_PROMPT, "temperature": 0, "logprobs": 2, **fields}
    whole = _whole(gateway, "/v1/completions", body)
    streamed = _streamed(gateway, "/v1/completions", body)
    assert whole["logprobs"]["tokens"]  # an answer, not an empty one
    for key in ("text", "logprobs", "finish_reason"):
        assert streamed[key] == whole[key], key
    assert _counts(streamed["usage"]) == _counts(whole["usage"])


@pytest.mark.parametrize("stream", [False, True])
def test_a_remote_tiers_text_offsets_are_its_own(
    gateway: Server, relay: Server, stream: bool
) -> None:
    """Legacy logprobs carry no bytes: each U+FFFD piece read as a character of its own
    ([0, 1, 2, 3, ...] whole, [0, 1, 2, 2, 3, 3, ...] streamed, against [0, 0, 1, 1, ...])."""
    body = {"model": MODEL, "prompt": CJK_PROMPT, "max_tokens": 12, "temperature": 0}
    upstream = _whole(gateway, "/v1/completions", {**body, "logprobs": 1})["logprobs"]
    assert "\ufffd" in upstream["tokens"]  # the premise: characters split over tokens
    relayed = {**body, "model": "remote", "logprobs": 1}
    answer = (
        _streamed(relay, "/v1/completions", relayed)
        if stream
        else _whole(relay, "/v1/completions", relayed)
    )
    assert answer["logprobs"]["text_offset"] == upstream["text_offset"]


def test_chat_streamed_is_the_whole_one(gateway: Server) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Repeat exactly: 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈"}],
        "max_tokens": 20,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
        "stop": ["\u200d👩"],  # begins inside the family emoji's tokens
    }
    whole = _whole(gateway, "/v1/chat/completions", body)
    streamed = _streamed(gateway, "/v1/chat/completions", body)
    assert streamed["text"] == whole["message"]["content"]
    assert streamed["logprobs"]["content"] == whole["logprobs"]["content"]
    assert streamed["finish_reason"] == whole["finish_reason"]
    assert _counts(streamed["usage"]) == _counts(whole["usage"])
