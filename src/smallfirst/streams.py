"""Small helpers for the chunk streams that pass between the rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator

from smallfirst.completions import Chunk


async def replay(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


async def prepend(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await close_stream(rest)


async def close_stream(iterator: AsyncIterator[Chunk]) -> None:
    """Close a stream its reader is done with (an engine then stops generating), if it is
    a generator; plain iterators have nothing to close."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
