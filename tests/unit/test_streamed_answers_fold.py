"""A stream's answers joined as its chunks pass (`AnswerSoFar`, `ChoicesSoFar`): the same
answers as joining the whole list of chunks did, and the chunks themselves let go of."""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from smallfirst.answers import RequestContext
from smallfirst.choices import completions_of
from smallfirst.completions import (
    Chunk,
    Completion,
    FinishReason,
    TokenLogprob,
    ToolCallDelta,
    TopLogprob,
    Usage,
    join_tool_call_deltas,
)
from smallfirst.logs import RequestLog
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest, FunctionCall, GenerateRequest, ToolCall
from tests.helpers import fake_backend, fake_settings

PIECES = ["", "a", "Hello", " wörld", "\r\n", "\r", "é", "🙂", "{", '"x": 1', "}"]
FINISHES: list[FinishReason | None] = [None, None, None, "stop", "length", "tool_calls"]


def reference_completions(chunks: list[Chunk], n: int, *, with_logprobs: bool) -> list[Completion]:
    """The join as it was, of the whole list at the end: the reference for the fold."""
    by_index: list[list[Chunk]] = [[] for _ in range(n)]
    for chunk in chunks:
        if 0 <= chunk.index < n:
            by_index[chunk.index].append(chunk)
    return [_reference_completion(part, with_logprobs=with_logprobs) for part in by_index]


def _reference_completion(chunks: list[Chunk], *, with_logprobs: bool) -> Completion:
    logprobs = [lp for chunk in chunks for lp in chunk.logprobs or []]
    return Completion(
        text="".join(chunk.text for chunk in chunks),
        finish_reason=next((c.finish_reason for c in reversed(chunks) if c.finish_reason), "stop"),
        usage=next((c.usage for c in reversed(chunks) if c.usage is not None), Usage()),
        logprobs=logprobs if with_logprobs else None,
        tool_calls=_reference_calls([d for chunk in chunks for d in chunk.tool_calls or []]),
        refusal="".join(chunk.refusal for chunk in chunks) or None,
        reasoning="".join(chunk.reasoning for chunk in chunks) or None,
        system_fingerprint=next(
            (c.system_fingerprint for c in chunks if c.system_fingerprint), None
        ),
        service_tier=next((c.service_tier for c in chunks if c.service_tier), None),
    )


def _reference_calls(deltas: list[ToolCallDelta]) -> list[ToolCall] | None:
    if not deltas:
        return None
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for delta in deltas:
        if delta.id:
            ids.setdefault(delta.index, delta.id)
        if delta.name:
            names.setdefault(delta.index, delta.name)
        arguments.setdefault(delta.index, []).append(delta.arguments)
    return [
        ToolCall(
            id=ids.get(index, f"call_{index}"),
            function=FunctionCall(name=names.get(index, ""), arguments="".join(parts)),
        )
        for index, parts in sorted(arguments.items())
    ]


def varied_stream(rng: random.Random, n: int) -> list[Chunk]:
    """Interleaved chunks of `n` answers (and of answers beyond them) with every field a
    stream carries: text, refusals, reasoning, tool calls in pieces, logprobs, finish
    reasons, usage on chunks along the way and at the end, what served them."""
    chunks = []
    for _ in range(rng.randint(0, 40)):
        calls = [
            ToolCallDelta(
                index=rng.randint(0, 2),
                id=rng.choice([None, "", "call_a", "call_b"]),
                name=rng.choice([None, "", "get_weather", "lookup"]),
                arguments=rng.choice(PIECES),
            )
            for _ in range(rng.choice([0, 0, 1, 2]))
        ]
        logprobs = [
            TokenLogprob(
                token=rng.choice(PIECES),
                logprob=rng.choice([None, -0.5]),
                top=[TopLogprob(token="t", logprob=-1.0)] * rng.randint(0, 2),
            )
            for _ in range(rng.choice([0, 1, 2]))
        ]
        chunks.append(
            Chunk(
                index=rng.choice([*range(n), n, -1]) if rng.random() < 0.1 else rng.randrange(n),
                text=rng.choice(PIECES),
                logprobs=rng.choice([None, logprobs]),
                tool_calls=calls or rng.choice([None, []]),
                refusal=rng.choice(["", "", "I can't", " help"]),
                reasoning=rng.choice(["", "", "Think", " more"]),
                finish_reason=rng.choice(FINISHES),
                usage=rng.choice([None, None, Usage(prompt_tokens=3, completion_tokens=5)]),
                system_fingerprint=rng.choice([None, "", "fp_1", "fp_2"]),
                service_tier=rng.choice([None, "", "default", "flex"]),
            )
        )
    return chunks


def test_the_answers_joined_as_chunks_pass_are_those_joined_from_the_whole_stream() -> None:
    rng = random.Random(20261207)
    for _ in range(500):
        n = rng.randint(1, 3)
        chunks = varied_stream(rng, n)
        for with_logprobs in (False, True):
            joined = completions_of(chunks, n, with_logprobs=with_logprobs)
            assert joined == reference_completions(chunks, n, with_logprobs=with_logprobs)
        deltas = [delta for chunk in chunks for delta in chunk.tool_calls or []]
        assert join_tool_call_deltas(deltas) == _reference_calls(deltas)


async def test_a_stream_lets_go_of_each_chunk_once_it_was_sent(tmp_path: Path) -> None:
    """The gateway kept every chunk of a stream, its logprobs too, until the stream ended,
    only to log the answer's text: a long answer held ~0.6 kB a chunk, ~11 kB with
    `top_logprobs: 20`, for its whole life."""
    settings = fake_settings(tmp_path, privacy={"enabled": False})
    gateway = Gateway(settings, request_log=RequestLog(tmp_path / "requests.db"))
    sent: list[weakref.ref[Chunk]] = []
    held_when_the_last_came: list[int] = []

    async def answers(request: GenerateRequest) -> AsyncIterator[Chunk]:
        for _ in range(50):
            top = [TopLogprob(token="b", logprob=-2.0)]
            chunk = Chunk(text="a", logprobs=[TokenLogprob(token="a", logprob=-0.1, top=top)])
            sent.append(weakref.ref(chunk))
            yield chunk
        gc.collect()
        held_when_the_last_came.append(sum(ref() is not None for ref in sent))
        yield Chunk(finish_reason="stop", usage=Usage(prompt_tokens=2, completion_tokens=50))

    fake_backend(gateway, "tiny").answers = answers  # type: ignore[method-assign]
    request = ChatRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    )
    streamed = await gateway.stream(request, RequestContext(endpoint="/v1/chat/completions"))
    text = "".join([chunk.text async for chunk in streamed.chunks])
    gateway.request_log.close()

    assert text == "a" * 50
    assert held_when_the_last_came[0] <= 1  # the one on its way, in the loops' variables
