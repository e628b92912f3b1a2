"""A remote stream's answers finish for the client when the upstream finishes them, not when
its usage comes: an upstream asked for `stream_options.include_usage` sends the usage in an
event of its own after the finish, and one that took 8 s over it had the client see the end
of the answer 8 s late. The usage still reaches the client that asked for it, and the request
log, as the upstream counted it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from smallfirst.completions import Chunk, Usage
from smallfirst.logs import RequestRecord
from tests.helpers import chat_body, fake_client, fake_settings, post_scope
from tests.unit.test_openai_compat import REQUEST, sse, upstream
from tests.unit.test_remote_accounting import (
    MODEL,
    PRICED,
    billed,
    counted,
    remote_model,
    serving,
)

STREAM_REQUEST = REQUEST.model_copy(update={"stream": True})
UPSTREAM_USAGE = {"prompt_tokens": 123, "completion_tokens": 45}  # no estimate is as high
HANG_GUARD_S = 10


def _answer(finish_key: str) -> list[dict[str, Any]]:
    """An answer's events up to its finish: chat's (`delta`) or a text completion's (`text`)."""
    if finish_key == "delta":
        return [
            {"choices": [{"index": 0, "delta": {"content": "hello"}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
    return [{"choices": [{"index": 0, "text": "hello", "finish_reason": "stop"}]}]


class UsageAfterTheFinish:
    """An upstream that streams an answer to its finish, then holds its usage event until
    `release` is set (at most HANG_GUARD_S), and ends the stream."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.usage_sent = threading.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(_answer("delta" if "messages" in body else "text")))
        await asyncio.to_thread(self.release.wait, HANG_GUARD_S)
        self.usage_sent.set()
        await response.write(sse([{"choices": [], "usage": UPSTREAM_USAGE}, "[DONE]"]))
        return response


async def test_the_finish_chunk_comes_before_the_upstreams_usage() -> None:
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(_answer("delta")))
        await release.wait()
        await response.write(sse([{"choices": [], "usage": UPSTREAM_USAGE}, "[DONE]"]))
        return response

    async with upstream(handle) as backend:
        stream = backend.stream(STREAM_REQUEST)
        seen: list[Chunk] = []
        while not seen or seen[-1].finish_reason is None:  # the upstream holds its usage
            seen.append(await asyncio.wait_for(anext(stream), HANG_GUARD_S))
        release.set()
        rest = [chunk async for chunk in stream]
    assert [(c.text, c.finish_reason, c.usage) for c in seen] == [
        ("hello", None, None),
        ("", "stop", None),
    ]
    assert [(c.text, c.finish_reason, c.usage) for c in rest] == [
        ("", None, Usage.model_validate(UPSTREAM_USAGE))
    ]


class ClientAtTheFinish:
    """A client reading the stream: at the answer's finish it notes whether the upstream had
    sent its usage yet, then lets it send it, or (`leaves`) leaves."""

    def __init__(self, upstream: UsageAfterTheFinish, *, leaves: bool) -> None:
        self._upstream = upstream
        self._leaves = leaves
        self.usage_sent_before_finish: bool | None = None  # None: no finish came

    def leaves_after(self, frame: bytes) -> bool:
        if b'"finish_reason":"stop"' not in frame and b"response.output_item.done" not in frame:
            return False
        self.usage_sent_before_finish = self._upstream.usage_sent.is_set()
        if not self._leaves:
            self._upstream.release.set()
        return self._leaves


async def _stream_from(
    app: Any, path: str, body: dict[str, Any], leaves_after: Callable[[bytes], bool]
) -> list[bytes]:
    """Drive the ASGI app as a server would for a client reading a stream, which leaves when
    `leaves_after` a frame says so. Returns the body's frames."""
    messages = iter([{"type": "http.request", "body": json.dumps(body).encode()}])
    frames: list[bytes] = []
    leave = asyncio.Event()

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is not None:
            return message
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            frames.append(message["body"])
            if leaves_after(message["body"]):
                leave.set()
        await asyncio.sleep(0)

    await app(post_scope(path), receive, send)
    return frames


def _events(frames: list[bytes]) -> list[dict[str, Any]]:
    lines = b"".join(frames).decode().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def _streamed(
    tmp_path: Path, path: str, body: dict[str, Any], *, leaves: bool = False
) -> tuple[bool | None, list[dict[str, Any]], RequestRecord, str]:
    """Whether the upstream had sent its usage when the client got the answer's finish, the
    events the client got, the request log's row and /metrics."""
    upstream = UsageAfterTheFinish()
    with serving(upstream) as base_url:
        model = remote_model(base_url, "cloud", PRICED)
        settings = fake_settings(tmp_path, models=[model], privacy={"enabled": False})
        client, gateway = fake_client(settings)
        records: list[RequestRecord] = []
        gateway.ledger.add_observer(records.append)
        reader = ClientAtTheFinish(upstream, leaves=leaves)
        with client:
            assert client.portal is not None
            frames = client.portal.call(_stream_from, client.app, path, body, reader.leaves_after)
            upstream.release.set()
            metrics = client.get("/metrics").text
    (record,) = records
    return reader.usage_sent_before_finish, _events(frames), record, metrics


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_the_client_gets_the_finish_at_once_and_the_upstreams_usage_after(
    tmp_path: Path, path: str
) -> None:
    if path == "/v1/chat/completions":
        body = chat_body(MODEL, stream=True, stream_options={"include_usage": True})
    else:
        body = {"model": MODEL, "prompt": "Hi", "stream": True}
        body["stream_options"] = {"include_usage": True}
    usage_sent_before_finish, events, record, _ = _streamed(tmp_path, path, body)
    assert usage_sent_before_finish is False
    finishes = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert [e["choices"][0]["finish_reason"] for e in finishes] == ["stop"]
    assert events[-1]["choices"] == []  # then the usage, in a chunk of its own, as OpenAI's
    told = events[-1]["usage"]
    assert (told["prompt_tokens"], told["completion_tokens"]) == (123, 45)
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 123, 45)
    assert record.cost_usd == pytest.approx((123 * 1000.0 + 45 * 2000.0) / 1e6)


def test_a_responses_stream_closes_its_items_at_once_and_completes_with_the_usage(
    tmp_path: Path,
) -> None:
    body = {"model": MODEL, "input": "Hi", "stream": True, "store": False}
    usage_sent_before_finish, events, record, _ = _streamed(tmp_path, "/v1/responses", body)
    assert usage_sent_before_finish is False
    kinds = [event["type"] for event in events]
    assert kinds.index("response.output_item.done") < kinds.index("response.completed")
    assert kinds[-1] == "response.completed"
    usage = events[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (123, 45)
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 123, 45)


def test_a_client_that_leaves_between_the_finish_and_the_usage_is_billed_as_one_that_left(
    tmp_path: Path,
) -> None:
    """As any stream its client left before its usage came: the prompt and the answer it got,
    estimated, and a 499 the model answered. It is no cancelled generation: the answer had
    ended."""
    body = chat_body(MODEL, stream=True, stream_options={"include_usage": True})
    usage_sent_before_finish, events, record, metrics = _streamed(
        tmp_path, "/v1/chat/completions", body, leaves=True
    )
    assert usage_sent_before_finish is False
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "stop"
    assert (record.status, record.tier, record.model_answered) == (499, "cloud", MODEL)
    assert record.prompt_tokens > 0  # estimated: the upstream's count never came
    assert record.completion_tokens == Usage.estimated("", "hello").completion_tokens
    assert record.cost_usd == pytest.approx(billed(record, PRICED))
    assert counted(metrics, "smallfirst_generations_cancelled_total") == 0
