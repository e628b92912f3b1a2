"""Small helpers for the chunk streams that pass between the rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator

from smallfirst.completions import Chunk


async def replay(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


async def started(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """`chunks` with its first chunk read now: a stream that fails at once fails here (while
    the status can still say so), and closing what is returned closes `chunks`, begun, so its
    `finally` runs even if no one read on (closing a generator never begun runs nothing)."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return replay([])
    return _Begun(first, chunks)


class _Begun:
    """A begun stream: its first chunk, then the rest."""

    def __init__(self, first: Chunk, rest: AsyncIterator[Chunk]) -> None:
        self._first: Chunk | None = first
        self._rest = rest

    def __aiter__(self) -> _Begun:
        return self

    async def __anext__(self) -> Chunk:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await anext(self._rest)

    async def aclose(self) -> None:
        await close_stream(self._rest)


async def close_stream(iterator: AsyncIterator[Chunk]) -> None:
    """Close a stream its reader is done with (an engine then stops generating), if it is
    a generator; plain iterators have nothing to close."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
