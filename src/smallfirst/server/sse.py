"""Server-sent events exactly as OpenAI frames them: `data: {json}` ... `data: [DONE]`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from smallfirst.errors import SmallfirstError
from smallfirst.server.errors import error_body
from smallfirst.server.render import ChunkRenderer
from smallfirst.types import Chunk

DONE = b"data: [DONE]\n\n"


def frame(event: dict[str, Any]) -> bytes:
    return (
        b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


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
