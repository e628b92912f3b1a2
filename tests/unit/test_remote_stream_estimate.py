"""A remote stream's usage, estimated when the upstream sends none (`StreamReader`): from the
characters its answers wrote, counted as they pass, not from the text kept to the end (a
stream's length is not bounded)."""

from __future__ import annotations

import gc
import json
import random
import tracemalloc
from typing import Any

from smallfirst.backends.openai_wire import StreamReader
from smallfirst.completions import Chunk, Usage

BODY = {"model": "m", "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
# Texts as upstreams write them; a lone half of a surrogate pair (sent escaped) is joined with
# its other half in the next event, or ends its answer as U+FFFD.
TEXTS = ["", "a", "Hello", " wörld", "é", "🙂", "\r\n", '{"city": "Oslo"}', "\ud83d", "\ude42"]
FIELDS = ["content", "refusal", "reasoning_content", "arguments"]


def varied_stream(rng: random.Random, n: int) -> list[str]:
    """Events of `n` answers' deltas of every kind, each answer finished, without usage (or
    with a usage that lacks a count, which is estimated too)."""
    events = []
    for _ in range(rng.randrange(1, 30)):
        index, field, text = rng.randrange(n), rng.choice(FIELDS), rng.choice(TEXTS)
        if field == "arguments":
            call = {"index": 0, "id": "call_0", "type": "function"}
            delta: dict[str, Any] = {
                "tool_calls": [call | {"function": {"name": "get_weather", "arguments": text}}]
            }
        else:
            delta = {field: text}
        events.append({"choices": [{"index": index, "delta": delta}]})
    for index in range(n):
        events.append({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
    if rng.random() < 0.3:
        events.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": None}})
    return [json.dumps(event) for event in events]


def written(chunks: list[Chunk]) -> str:
    """All the chunks' texts: what an answer wrote, as the client gets it."""
    calls = [call.arguments for chunk in chunks for call in chunk.tool_calls or []]
    return "".join(c.text + c.refusal + c.reasoning for c in chunks) + "".join(calls)


def test_the_usage_estimated_is_that_of_the_whole_text_written() -> None:
    rng = random.Random(20261207)
    for _ in range(500):
        n = rng.randrange(1, 4)
        payloads = varied_stream(rng, n)
        reader = StreamReader("m", n)
        chunks = [chunk for payload in payloads for chunk in reader.chunks(payload)]
        chunks += reader.ending(BODY, done=True)
        expected = Usage.estimated(json.dumps(BODY["messages"]), written(chunks))
        if "usage" in payloads[-1]:  # the upstream's prompt count is kept
            expected = expected.model_copy(update={"prompt_tokens": 12})
        assert chunks[-1].usage == expected, payloads


def test_a_long_stream_holds_no_more_than_a_short_one() -> None:
    """Its text was kept to the end, only to be counted: ~62 bytes a five-letter piece,
    6.2 MB for 100,000 pieces."""
    piece = json.dumps({"choices": [{"index": 0, "delta": {"content": "word "}}]})
    reader = StreamReader("m", 1)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(1_000):
            reader.chunks(piece)
        after_a_short_stream, _ = tracemalloc.get_traced_memory()
        for _ in range(20_000):
            reader.chunks(piece)
        after_a_long_one, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ending = reader.ending(BODY, done=True)
    assert ending[-1].usage == Usage.estimated(json.dumps(BODY["messages"]), "word " * 21_000)
    assert after_a_long_one - after_a_short_stream < 100_000  # bytes; the text was 1.3 MB
