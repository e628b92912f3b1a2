"""A remote model's calls beyond `max_concurrency` wait their turn for a connection, for at
most `queue_timeout_s`, and end at shutdown (aiohttp's pool wait had no bound and ignored it)."""

import asyncio

import pytest
from aiohttp import web

from smallfirst.backends.connection_places import ConnectionPlaces
from smallfirst.backends.openai_compat import OpenAICompatBackend
from smallfirst.completions import Chunk
from smallfirst.errors import InvalidRequest, QueueFull, ShuttingDown, UpstreamError
from tests.helpers import until
from tests.unit.test_openai_compat import (
    ANSWER,
    REQUEST,
    finished,
    sse,
    unreachable,
    upstream,
)

STREAM_REQUEST = REQUEST.model_copy(update={"stream": True})


async def _streaming_until(release: asyncio.Event, request: web.Request) -> web.StreamResponse:
    """Streams (keeping its connection busy) until `release` is set."""
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(sse([{"choices": [{"delta": {"content": "a"}}]}]))
    await release.wait()
    await response.write(sse([{"choices": [{"delta": {}, "finish_reason": "stop"}]}, "[DONE]"]))
    return response


async def _holding(backend: OpenAICompatBackend) -> asyncio.Task[list[Chunk]]:
    """A stream that holds one of `backend`'s connections, its first piece read."""
    stream = backend.stream(STREAM_REQUEST)
    first = await anext(stream)

    async def rest() -> list[Chunk]:
        return [first, *[chunk async for chunk in stream]]

    return asyncio.ensure_future(rest())


async def test_a_call_beyond_max_concurrency_waits_a_bounded_time_then_is_a_429() -> None:
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        if (await request.json()).get("stream"):
            return await _streaming_until(release, request)
        return web.json_response(ANSWER)

    async with upstream(handle, max_concurrency=1, queue_timeout_s=0.1) as backend:
        holder = await _holding(backend)
        with pytest.raises(QueueFull) as refused:
            await asyncio.wait_for(backend.complete(REQUEST), 10)
        release.set()
        assert finished(await holder) == "stop"
        assert (await backend.complete(REQUEST)).text == "hello"  # the place came back
    assert (refused.value.status, refused.value.code, refused.value.retry_after_s) == (
        429,
        "queue_full",
        1,
    )
    assert "max_concurrency" in refused.value.message


async def test_calls_waiting_for_a_connection_are_counted_and_end_at_shutdown() -> None:
    """Before, they waited on in aiohttp's pool until the server's grace period cut them
    (a plain-text 500, logged as 499)."""
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _streaming_until(release, request)

    async with upstream(handle, max_concurrency=1) as backend:
        holder = await _holding(backend)
        waiting = [asyncio.ensure_future(backend.complete(REQUEST)) for _ in range(3)]
        await until(lambda: backend.queue_depth() == 3)
        backend.end_answers(ShuttingDown("the server is shutting down; retry"))
        ended = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
        assert all(isinstance(error, ShuttingDown) for error in ended)
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(holder, 10)
        assert backend.queue_depth() == 0
        release.set()


async def test_every_way_a_call_ends_gives_its_connection_back() -> None:
    """One connection, used in turn by answers, streams, refusals and a call whose client
    left while it waited: none keeps it (the next call would wait for it in vain)."""
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("max_tokens") == 1:
            return web.json_response({"error": {"message": "no"}}, status=400)
        if body.get("stream"):
            return await _streaming_until(release, request)
        return web.json_response(ANSWER)

    async with upstream(handle, max_concurrency=1, queue_timeout_s=5) as backend:
        for _ in range(2):
            assert (await backend.complete(REQUEST)).text == "hello"
            with pytest.raises(InvalidRequest):
                await backend.complete(REQUEST.model_copy(update={"max_tokens": 1}))
            holder = await _holding(backend)
            left = asyncio.ensure_future(backend.complete(REQUEST))
            await until(lambda: backend.queue_depth() == 1)
            left.cancel()
            release.set()
            assert finished(await holder) == "stop"
            release.clear()
            stream = backend.stream(STREAM_REQUEST)
            await anext(stream)
            await stream.aclose()  # the client left mid-stream
        assert backend.queue_depth() == 0


async def test_a_call_that_cannot_connect_gives_its_place_back() -> None:
    async with unreachable(max_concurrency=1) as backend:
        for _ in range(3):
            with pytest.raises(UpstreamError, match="cannot reach upstream"):
                await asyncio.wait_for(backend.complete(REQUEST), 10)


async def test_places_are_handed_in_the_order_calls_asked_for_them() -> None:
    places = ConnectionPlaces("cloud", 1, timeout_s=60)
    await places.take()
    order: list[int] = []

    async def call(number: int) -> None:
        await places.take()
        order.append(number)

    calls = []
    for number in range(4):
        calls.append(asyncio.ensure_future(call(number)))
        await until(lambda: places.waiting() == len(calls))
    calls[2].cancel()
    await until(lambda: places.waiting() == 3)
    for served in range(1, 4):
        places.give_back()
        await until(lambda served=served: len(order) == served)
    assert order == [0, 1, 3]
