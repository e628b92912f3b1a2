"""What a call to an OpenAI-compatible upstream is billed when the shutdown ends it
(`Gateway.end_answers`): once its upstream had the prompt, as a call its client left; while it
still waited to be sent, nothing. The gateway is driven in the test's own event loop, its
upstream a scripted server on loopback that says when it has a call's body and then holds
the call open, so that the shutdown ends the call at a known point (through a TestClient's
portal, ending answers while a request was in flight deadlocked)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from smallfirst.answers import RequestContext
from smallfirst.backends.openai_compat import MAX_RETRY_WAIT_S
from smallfirst.completions import Chunk
from smallfirst.errors import ShuttingDown
from smallfirst.logs import RequestRecord
from smallfirst.server.metrics import Metrics
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest
from tests.helpers import chat_body, fake_settings, until
from tests.unit.test_remote_accounting import (
    MAX_TOKENS,
    MODEL,
    PRICED,
    billed,
    counted,
    remote_model,
)

WAIT_S = 10  # a hang guard, not a timing
SHORTER_THAN_THE_WAIT_S = MAX_RETRY_WAIT_S / 2  # a hang guard too, half the shortest wait
PIECE = {"choices": [{"index": 0, "delta": {"content": "Hello"}}]}


class HeldUpstream:
    """Reads each call's body (then `has_a_call` is set) and holds the call open until
    `released`: before answering (`begins` False), or once its answer began (its headers
    sent and, for a stream, one piece)."""

    def __init__(self, *, begins: bool) -> None:
        self.begins = begins
        self.has_a_call = asyncio.Event()
        self.released = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        stream = bool((await request.json()).get("stream"))
        self.has_a_call.set()
        response = web.StreamResponse(headers={} if stream else {"Content-Length": "5000"})
        if self.begins:
            await response.prepare(request)
            if stream:
                await response.write(f"data: {json.dumps(PIECE)}\n\n".encode())
        await self.released.wait()
        return response


class Booked:
    """A gateway's request log rows and /metrics, as its server's observers see them."""

    def __init__(self, gateway: Gateway) -> None:
        self.rows: list[RequestRecord] = []
        self.metrics = Metrics(gateway.backends, gateway.health, "cloud")
        gateway.ledger.add_observer(self.rows.append)
        gateway.ledger.add_observer(self.metrics.observe)

    def counted(self, name: str, **labels: str) -> float:
        return counted(self.metrics.render().decode(), name, **labels)


@asynccontextmanager
async def gateway_over(
    upstream: HeldUpstream, tmp_path: Path, **config: Any
) -> AsyncIterator[tuple[Gateway, Booked]]:
    """A gateway whose one model, MODEL on the cloud tier, is `upstream` on loopback."""
    app = web.Application()
    app.router.add_post("/v1/{path:.*}", upstream.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    model = remote_model(str(server.make_url("/v1")), "cloud", PRICED, **config)
    gateway = Gateway(fake_settings(tmp_path, models=[model], privacy={"enabled": False}))
    try:
        yield gateway, Booked(gateway)
    finally:
        upstream.released.set()
        await gateway.aclose()
        await server.close()


def asked(*, stream: bool) -> ChatRequest:
    return ChatRequest.model_validate(chat_body(MODEL, max_tokens=MAX_TOKENS, stream=stream))


async def answered(gateway: Gateway, request: ChatRequest) -> list[Chunk] | None:
    """The request's whole answer: read to its end if streamed."""
    if not request.stream:
        await gateway.complete(request, RequestContext(endpoint="chat"))
        return None
    answer = await gateway.stream(request, RequestContext(endpoint="chat"))
    return [chunk async for chunk in answer.chunks]


async def relayed(chunks: AsyncIterator[Chunk], texts: list[str]) -> None:
    """Read a stream to its end, its pieces' text into `texts` as they come."""
    async for chunk in chunks:
        texts.append(chunk.text)


@pytest.mark.parametrize(
    ("stream", "begun", "answer_tokens"),
    [
        (False, False, MAX_TOKENS),  # the upstream writes it to its end all the same
        (False, True, MAX_TOKENS),
        (True, False, 0),  # a stream stops with its connection: its prompt was read
    ],
    ids=["not streamed", "not streamed, begun", "streamed"],
)
async def test_a_remote_call_the_shutdown_ends_once_sent_is_billed_as_one_its_client_left(
    tmp_path: Path, stream: bool, begun: bool, answer_tokens: int
) -> None:
    """It was logged as a 503 of 0 tokens and $0 (in `stats` and /metrics too), while the
    upstream had the prompt and went on answering it: a client leaving at the same moment was
    billed the estimate (`test_remote_accounting.py`)."""
    upstream = HeldUpstream(begins=begun)
    async with gateway_over(upstream, tmp_path) as (gateway, booked):
        call = asyncio.ensure_future(answered(gateway, asked(stream=stream)))
        await asyncio.wait_for(upstream.has_a_call.wait(), WAIT_S)
        gateway.end_answers()
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(call, WAIT_S)
        (row,) = booked.rows
        assert (row.status, row.error_code, row.tier) == (503, "server_shutting_down", "cloud")
        assert row.prompt_tokens > 0
        assert row.completion_tokens == answer_tokens
        assert row.cost_usd == pytest.approx(billed(row, PRICED))
        assert booked.counted("smallfirst_tokens_total", tier="cloud", direction="input") == (
            row.prompt_tokens
        )
        assert booked.counted("smallfirst_tokens_total", tier="cloud", direction="output") == (
            answer_tokens
        )
        assert booked.counted("smallfirst_cost_usd_total", tier="cloud") == pytest.approx(
            row.cost_usd
        )
        assert booked.counted("smallfirst_generations_cancelled_total") == 1
        assert booked.counted("smallfirst_upstream_errors_total") == 0  # the upstream did not fail


async def test_a_stream_the_shutdown_ends_after_it_began_is_billed_what_it_sent(
    tmp_path: Path,
) -> None:
    """Its prompt and the text relayed so far, at the model's prices (as a stream cut short)."""
    async with gateway_over(HeldUpstream(begins=True), tmp_path) as (gateway, booked):
        answer = await asyncio.wait_for(
            gateway.stream(asked(stream=True), RequestContext(endpoint="chat")), WAIT_S
        )
        gateway.end_answers()
        texts: list[str] = []
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(relayed(answer.chunks, texts), WAIT_S)
        (row,) = booked.rows
        assert texts == ["Hello"]
        assert (row.status, row.tier) == (503, "cloud")
        assert row.prompt_tokens > 0
        assert row.completion_tokens > 0
        assert row.cost_usd == pytest.approx(billed(row, PRICED))
        assert booked.counted("smallfirst_cost_usd_total", tier="cloud") == pytest.approx(
            row.cost_usd
        )


@pytest.mark.parametrize("stream", [False, True], ids=["not streamed", "streamed"])
async def test_a_remote_call_the_shutdown_ends_before_it_was_sent_is_not_billed(
    tmp_path: Path, stream: bool
) -> None:
    """A call still waiting for the model's one connection (`max_concurrency`) never reached
    the upstream: logged as a local model's call ended in its queue, 0 tokens, $0, no tier;
    the call holding the connection, which the upstream had, is billed."""
    upstream = HeldUpstream(begins=False)
    async with gateway_over(upstream, tmp_path, max_concurrency=1) as (gateway, booked):
        holder = asyncio.ensure_future(answered(gateway, asked(stream=False)))
        await asyncio.wait_for(upstream.has_a_call.wait(), WAIT_S)
        waiter = asyncio.ensure_future(answered(gateway, asked(stream=stream)))
        await until(lambda: gateway.backends[MODEL].queue_depth() == 1)
        gateway.end_answers()
        for call in (holder, waiter):
            with pytest.raises(ShuttingDown):
                await asyncio.wait_for(call, WAIT_S)
        sent, waited = sorted(booked.rows, key=lambda row: row.tier is None)
        assert (waited.status, waited.tier, waited.model_answered) == (503, None, None)
        assert (waited.prompt_tokens, waited.completion_tokens, waited.cost_usd) == (0, 0, 0.0)
        assert (sent.status, sent.tier, sent.completion_tokens) == (503, "cloud", MAX_TOKENS)
        assert sent.cost_usd == pytest.approx(billed(sent, PRICED))
        assert booked.counted("smallfirst_cost_usd_total", tier="cloud") == pytest.approx(
            sent.cost_usd
        )
        assert booked.counted("smallfirst_generations_cancelled_total") == 2


class AskingToWait(HeldUpstream):
    """Refuses each call with a 503 that asks to be tried again in `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(begins=False)
        self.retry_after = retry_after
        self.calls = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.calls += 1
        self.has_a_call.set()
        refusal = {"error": {"message": "overloaded", "type": "server_error"}}
        return web.json_response(
            refusal, status=503, headers={"Retry-After": f"{self.retry_after:g}"}
        )


@pytest.mark.parametrize(
    ("retry_after", "backoff_s"),
    [(MAX_RETRY_WAIT_S, 0.0), (0.0, 60.0)],
    ids=["Retry-After", "backoff"],
)
async def test_a_remote_call_waiting_to_be_tried_again_ends_at_the_shutdown_unbilled(
    tmp_path: Path, retry_after: float, backoff_s: float
) -> None:
    """It slept out its wait (`Retry-After` up to 10 s, or `backoff_s`) before it ended with
    the 503 ShuttingDown; it now ends at once, well within a guard shorter than the wait. Its
    upstream refused it, so it is not billed, and it is not sent again."""
    upstream = AskingToWait(retry_after)
    config = {"max_retries": 1, "backoff_s": backoff_s}
    async with gateway_over(upstream, tmp_path, **config) as (gateway, booked):
        call = asyncio.ensure_future(answered(gateway, asked(stream=False)))
        await until(lambda: gateway.backends[MODEL].upstream_errors() == {"5xx": 1})
        gateway.end_answers()
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(call, SHORTER_THAN_THE_WAIT_S)
        (row,) = booked.rows
        assert (row.status, row.error_code, row.tier) == (503, "server_shutting_down", None)
        assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (0, 0, 0.0)
        assert upstream.calls == 1
