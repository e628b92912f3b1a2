"""How much of an upstream's answer the remote backend reads: `max_answer_bytes` bounds an
answer read whole and each event of a stream, counted as they arrive (before, any size was
held: a 200 MB answer took 570 MB more of the gateway's memory)."""

import asyncio
import json

import pytest
from aiohttp import web

from smallfirst.errors import UpstreamError
from tests.unit.test_openai_compat import ANSWER, REQUEST, finished, sse, upstream
from tests.unit.test_openai_compat_quirks import DONE, STREAM_REQUEST, delta, streaming

LIMIT = 4096
SECRET = "zebra-secret"  # in the oversized content: no error message may quote it
BLOCK = (SECRET + " ").encode() * 100
ENDLESS_BYTES = 64_000_000  # far past what loopback's socket buffers hold


class Endless:
    """An upstream that answers `head`, then content for as long as its connection stays
    open (up to ENDLESS_BYTES), and tells whether that connection was closed on it."""

    def __init__(self, head: bytes, content_type: str, status: int = 200) -> None:
        self.head = head
        self.content_type = content_type
        self.status = status
        self.cut_off: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=self.status, headers={"content-type": self.content_type}
        )
        await response.prepare(request)
        await response.write(self.head)
        sent = 0
        try:
            while sent < ENDLESS_BYTES:
                await response.write(BLOCK)
                sent += len(BLOCK)
        except (ConnectionError, asyncio.CancelledError):  # aiohttp cancels it on a close
            self.cut_off.set_result(True)
            raise
        self.cut_off.set_result(False)
        return response


async def test_an_answer_over_the_limit_is_a_502_naming_the_limit_and_its_connection_closed() -> (
    None
):
    endless = Endless(b'{"choices": [{"message": {"content": "', "application/json")
    async with upstream(endless.handle, max_answer_bytes=LIMIT, max_retries=0) as backend:
        with pytest.raises(UpstreamError) as over:
            await backend.complete(REQUEST)
        assert await asyncio.wait_for(endless.cut_off, 30)  # not read to its end
        assert backend.upstream_errors() == {"too_large": 1}
    error = over.value
    assert error.status == 502
    assert error.message == (
        f"cloud: upstream answer exceeds the cloud model's max_answer_bytes ({LIMIT} bytes)"
    )
    assert error.received  # written, so billed, as an answer that broke off


async def test_one_stream_event_over_the_limit_fails_the_stream_that_began() -> None:
    began = sse([delta(content="hel")])
    endless = Endless(began + b'data: {"choices": [{"delta": {"content": "', "text/event-stream")
    async with upstream(endless.handle, max_answer_bytes=LIMIT, max_retries=0) as backend:
        stream = backend.stream(STREAM_REQUEST)
        assert (await anext(stream)).text == "hel"
        with pytest.raises(UpstreamError) as over:
            _ = [chunk async for chunk in stream]
        assert await asyncio.wait_for(endless.cut_off, 30)
        assert backend.upstream_errors() == {"too_large": 1}
    assert over.value.message == (
        f"cloud: upstream stream event exceeds the cloud model's max_answer_bytes ({LIMIT} bytes)"
    )
    assert over.value.received


async def test_an_event_over_the_limit_after_every_answer_finished_ends_the_stream_normally() -> (
    None
):
    """As a connection that drops then: what broke off was the usage (then estimated)."""
    oversized_usage = b'data: {"usage": {"note": "' + b"x" * LIMIT + b'"}}\n\n'
    raw = sse([delta(content="hello", finish="stop")]) + oversized_usage + DONE
    async with upstream(streaming(raw), max_answer_bytes=LIMIT) as backend:
        chunks = [chunk async for chunk in backend.stream(STREAM_REQUEST)]
        assert backend.upstream_errors() == {}
    assert "".join(chunk.text for chunk in chunks) == "hello"
    assert finished(chunks) == "stop"
    assert chunks[-1].usage is not None


async def test_an_answer_and_an_event_of_just_the_limit_are_read() -> None:
    """The limit is each event's, not the stream's: many events add up past it."""
    unpadded = len(json.dumps({**ANSWER, "pad": ""}))
    padded = json.dumps({**ANSWER, "pad": "x" * (LIMIT - unpadded)}).encode()
    assert len(padded) == LIMIT

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=padded, content_type="application/json")

    async with upstream(whole, max_answer_bytes=LIMIT) as backend:
        assert (await backend.complete(REQUEST)).text == "hello"

    text = "y" * (LIMIT - len(b"data: " + json.dumps(delta(content="")).encode()))
    line = b"data: " + json.dumps(delta(content=text)).encode()
    assert len(line) == LIMIT
    raw = (line + b"\n\n") * 3 + sse([delta(finish="stop")]) + DONE
    async with upstream(streaming(raw), max_answer_bytes=LIMIT) as backend:
        chunks = [chunk async for chunk in backend.stream(STREAM_REQUEST)]
    assert "".join(chunk.text for chunk in chunks) == text * 3


async def test_an_error_body_over_the_limit_is_neither_read_to_its_end_nor_quoted() -> None:
    endless = Endless(b'{"error": {"message": "', "application/json", status=500)
    async with upstream(endless.handle, max_answer_bytes=LIMIT, max_retries=0) as backend:
        with pytest.raises(UpstreamError, match="answered 500") as failed:
            await backend.complete(REQUEST)
        assert await asyncio.wait_for(endless.cut_off, 30)
        assert backend.upstream_errors() == {"5xx": 1}
    assert SECRET not in failed.value.message
