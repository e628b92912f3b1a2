"""`n` answers to one prompt (OpenAI's `n`, the `choices` of a response).

A remote tier is asked for all of them in one call, so its prompt is billed once. A local
model answers each choice as a request of its own: in slots, they are decoded side by side.
Choice i of a seeded request is sampled with seed + i, so the choices differ from each other
and each can be reproduced alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from smallfirst.completions import AnswerSoFar, Chunk, Completion, Usage
from smallfirst.streams import close_stream
from smallfirst.types import GenerateRequest

StreamOpener = Callable[[GenerateRequest], AsyncIterator[Chunk]]
_ENDED = object()  # a choice's stream ended; its finish chunk came before


def one_choice(request: GenerateRequest, index: int) -> GenerateRequest:
    """The request for choice `index` alone."""
    seed = request.seed + index if request.seed is not None else None
    return request.model_copy(update={"n": 1, "seed": seed})


async def fan_out(
    open_stream: StreamOpener, request: GenerateRequest, concurrency: int
) -> AsyncIterator[Chunk]:
    """The `request.n` choices, each from a stream of its own, at most `concurrency` at once:
    their chunks interleaved as they come, tagged with the choice's index. The usage of all of
    them is on the last chunk. The first failure ends the whole answer; closing the stream early
    stops every choice still under way."""
    queue: asyncio.Queue[tuple[int, Chunk | BaseException | object]] = asyncio.Queue()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def answer(index: int) -> None:
        async with gate:
            chunks = open_stream(one_choice(request, index))
            try:
                async for chunk in chunks:
                    queue.put_nowait((index, chunk))
            except Exception as error:  # handed to the reader, which raises it
                queue.put_nowait((index, error))
            finally:
                await close_stream(chunks)
            queue.put_nowait((index, _ENDED))

    tasks = [asyncio.create_task(answer(index)) for index in range(request.n)]
    usages: dict[int, Usage] = {}
    ended = 0
    try:
        while ended < request.n:
            index, item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, Chunk):
                ended += 1
                continue
            update: dict[str, object] = {"index": index, "usage": None}
            if item.finish_reason is not None:
                usages[index] = item.usage or Usage()
                if len(usages) == request.n:
                    update["usage"] = merged_usage([usages[i] for i in range(request.n)])
            yield item.model_copy(update=update)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def merged_usage(usages: list[Usage]) -> Usage:
    """As OpenAI counts `n` choices: the prompt once (as the first choice read it), the
    completion tokens of all of them."""
    first = usages[0]
    return Usage(
        prompt_tokens=first.prompt_tokens,
        cached_tokens=first.cached_tokens,
        completion_tokens=sum(usage.completion_tokens for usage in usages),
    )


def completions_of(chunks: list[Chunk], n: int, *, with_logprobs: bool) -> list[Completion]:
    """The `n` answers in a stream of interleaved chunks, in index order (usage: the stream's)."""
    answers = ChoicesSoFar(n, with_logprobs=with_logprobs)
    for chunk in chunks:
        answers.add(chunk)
    return answers.completions()


class ChoicesSoFar:
    """The `n` answers of a stream joined as its chunks pass (`AnswerSoFar`); a chunk of an
    answer beyond them is counted as come, and not kept."""

    def __init__(self, n: int, *, with_logprobs: bool) -> None:
        self._answers = [AnswerSoFar(with_logprobs=with_logprobs) for _ in range(n)]
        self.began = False  # whether any chunk came

    def add(self, chunk: Chunk) -> None:
        self.began = True
        if 0 <= chunk.index < len(self._answers):
            self._answers[chunk.index].add(chunk)

    def completions(self) -> list[Completion]:
        """The answers so far, in index order."""
        return [answer.completion() for answer in self._answers]


def usage_of(chunks: list[Chunk]) -> Usage:
    """The usage a stream reported (on its last chunk that has one)."""
    return next((c.usage for c in reversed(chunks) if c.usage is not None), Usage())
