"""Server-sent events exactly as OpenAI frames them: `data: {json}` ... `data: [DONE]`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pydantic_core

from smallfirst.errors import SmallfirstError
from smallfirst.server.errors import error_body
from smallfirst.server.render import ChunkRenderer
from smallfirst.types import Chunk

DONE = b"data: [DONE]\n\n"


def frame(event: dict[str, Any]) -> bytes:
    return b"data: " + pydantic_core.to_json(event, inf_nan_mode="null") + b"\n\n"


async def sse_stream(renderer: ChunkRenderer, chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    """Frame the stream. An error after the first byte can no longer change the HTTP status,
    so it is sent as an `error` event (as OpenAI does) and the stream ends without [DONE]."""
    for event in renderer.opening():
        yield frame(event)
    try:
        async for chunk in chunks:
            for event in renderer.events(chunk):
                yield frame(event)
    except SmallfirstError as error:
        yield frame(error_body(error))
        return
    yield DONE
