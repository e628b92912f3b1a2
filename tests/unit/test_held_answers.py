"""A local stream offered tools holds an answer while its beginning may still be a call
(`_calls_or_prose` in `llamacpp.py`). An answer of only whitespace, or JSON that is no call,
stays held to its end: the work per piece must not grow with what is held (the whole held
text was joined again at each piece: 50,000 pieces took minutes), and the chunks sent must be
those that joining it would have sent."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from smallfirst.backends import local_tools
from smallfirst.backends.llamacpp import _as_tool_call_chunks, _calls_or_prose
from smallfirst.completions import Chunk, Usage
from smallfirst.types import ChatRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASKED: list[dict[str, Any]] = [
    {},
    {"tool_choice": "required"},
    {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    {"response_format": {"type": "json_object"}},
    {"parallel_tool_calls": False},
]
# Pieces a model may write: whitespace (Unicode's too, which `lstrip` strips), the ways a
# call begins, a call's parts, and prose.
PIECES = [
    "",
    " ",
    "\n",
    "\t ",
    "\u3000",
    "{",
    "[",
    "`",
    "```",
    "json",
    "\n{",
    '"name"',
    ": ",
    '"get_weather"',
    '"get_time"',
    ",",
    '"arguments"',
    '{"city": "Oslo"}',
    "}",
    "]",
    "```\n",
    "x",
    "It is",
    '"a": 1',
]


def request(rng: random.Random) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [WEATHER, CLOCK],
            **rng.choice(ASKED),
        }
    )


def varied_pieces(rng: random.Random) -> list[str]:
    """Mostly what keeps an answer undecided for a while, then anything."""
    held = [rng.choice(PIECES[:6]) for _ in range(rng.randrange(8))]
    return held + [rng.choice(PIECES) for _ in range(rng.randrange(1, 12))]


async def engine(pieces: list[str], finish: str) -> AsyncIterator[Chunk]:
    for piece in pieces[:-1]:
        yield Chunk(text=piece)
    yield Chunk(text=pieces[-1], finish_reason=finish, usage=Usage(completion_tokens=9))


async def joining_all(request: ChatRequest, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """`_calls_or_prose` as it was, joining the whole held text at each piece: the reference."""
    calls = local_tools.StreamedCalls(request)
    held: list[Chunk] = []
    sending_calls = False
    async for chunk in chunks:
        calls.feed(chunk.text)
        sending_calls = sending_calls or calls.are_calls
        if sending_calls:
            held = []
            for delta in calls.deltas():
                yield Chunk(tool_calls=[delta])
            if chunk.finish_reason is not None:
                finish = "tool_calls" if calls.whole else chunk.finish_reason
                yield Chunk(finish_reason=finish, usage=chunk.usage)
            continue
        held.append(chunk)
        begun = "".join(piece.text for piece in held).lstrip()
        if begun and not local_tools.may_be_a_call(begun):
            for piece in held:
                yield piece
            async for rest in chunks:
                yield rest
            return
    if not sending_calls:
        for piece in _as_tool_call_chunks(request, held):
            yield piece


async def test_the_chunks_sent_are_those_the_whole_held_text_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_tools, "_call_id", lambda: "call_0")  # ids are random otherwise
    rng = random.Random(20261207)
    kinds = {"prose": 0, "calls": 0, "held to the end": 0}
    for _ in range(1500):
        asked, pieces = request(rng), varied_pieces(rng)
        finish = rng.choice(["stop", "length"])
        sent = [chunk async for chunk in _calls_or_prose(asked, engine(pieces, finish))]
        expected = [chunk async for chunk in joining_all(asked, engine(pieces, finish))]
        assert sent == expected, (asked, pieces)
        begun = "".join(pieces).lstrip()
        if any(chunk.tool_calls for chunk in sent):
            kinds["calls"] += 1
        elif begun and not local_tools.may_be_a_call(begun):
            kinds["prose"] += 1
        else:
            kinds["held to the end"] += 1
    assert min(kinds.values()) > 50, kinds  # the streams were varied enough to tell


class ReadChunk(Chunk):
    """A chunk that counts how often its text is read."""

    reads: ClassVar[int] = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "text":
            ReadChunk.reads += 1
        return super().__getattribute__(name)


@pytest.mark.parametrize("begins", [" ", '{"a": "'])
async def test_a_long_held_answer_is_not_read_again_at_each_piece(begins: str) -> None:
    asked = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER],
            "response_format": {"type": "json_object"},  # a JSON answer is held whole
        }
    )
    pieces = [begins] + ["x" if begins.strip() else " "] * 2000 + ['"}']

    async def chunks() -> AsyncIterator[Chunk]:
        for piece in pieces[:-1]:
            yield ReadChunk(text=piece)
        yield ReadChunk(text=pieces[-1], finish_reason="stop")

    ReadChunk.reads = 0
    sent = [chunk async for chunk in _calls_or_prose(asked, chunks())]
    reads = ReadChunk.reads
    assert "".join(chunk.text for chunk in sent) == "".join(pieces)
    assert reads <= 5 * len(pieces)  # a few times each, not once per piece after it
