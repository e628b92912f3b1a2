"""Server-sent events as OpenAI frames them: chat and text completions as `data: {json}` ...
`data: [DONE]`; the Responses API as `event: <type>` + `data: {json}`, without [DONE]."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pydantic_core

from smallfirst.completions import Chunk
from smallfirst.errors import SmallfirstError

DONE = b"data: [DONE]\n\n"


class StreamRenderer(Protocol):
    """Turns engine chunks into one API's stream events."""

    closing: bytes  # sent after the last event of a stream that ended well

    def frame(self, event: dict[str, Any]) -> bytes: ...

    def opening(self) -> list[dict[str, Any]]: ...

    def events(self, chunk: Chunk) -> list[dict[str, Any]]: ...

    def failure(self, error: SmallfirstError) -> list[dict[str, Any]]: ...

    def ending(self) -> list[dict[str, Any]]: ...  # what the end of the chunks tells


def data_frame(event: dict[str, Any]) -> bytes:
    return b"data: " + pydantic_core.to_json(event, inf_nan_mode="null") + b"\n\n"


def typed_frame(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\n" + data_frame(event)


async def sse_stream(
    renderer: StreamRenderer,
    chunks: AsyncIterator[Chunk],
    before_sending: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """Frame the stream. An error after the first byte can no longer change the HTTP status,
    so it is sent as the API's failure events (as OpenAI does) and the stream ends without its
    closing. `before_sending` is awaited after each chunk's events are made (and the end's),
    before any of them is framed (a stored response is written before the client reads its
    last event)."""
    for event in renderer.opening():
        yield renderer.frame(event)

    async def framed(events: list[dict[str, Any]]) -> list[bytes]:
        if before_sending is not None:
            await before_sending()
        return [renderer.frame(event) for event in events]

    try:
        async for chunk in chunks:
            for frame in await framed(renderer.events(chunk)):
                yield frame
        for frame in await framed(renderer.ending()):
            yield frame
    except SmallfirstError as error:
        for event in renderer.failure(error):
            yield renderer.frame(event)
        return
    if renderer.closing:
        yield renderer.closing
