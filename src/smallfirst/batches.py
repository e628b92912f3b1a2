"""A batch of prompts (`/v1/completions` with a list): each prompt is guarded, routed,
answered and logged as a request of its own (id `<batch id>-<position>`), and the batch is
answered whole or not at all.

At most as many prompts are answered at once as the largest local model has slots, so that a
batch does not fill a local queue by itself. Every prompt is guarded and routed before any is
answered: one that the privacy policy refuses fails the batch before the others go out. The
first failure stops the rest; they are logged with the status the client got (code
`batch_stopped`), not as requests their client left; so are prompts already guarded and
routed when another was refused. Prompts answered before it stay logged as answered: their
answers were made and paid for, though the client gets the batch's error. A client that
leaves has every prompt logged as 499, those still waiting their turn too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from smallfirst.answers import Answer, RequestContext
from smallfirst.errors import BatchStopped, served
from smallfirst.types import TextRequest

if TYPE_CHECKING:
    from smallfirst.service import Gateway, Prepared

T = TypeVar("T")


async def answer_each_prompt(
    gateway: Gateway, request: TextRequest, ctx: RequestContext
) -> list[Answer]:
    asked = [request.model_copy(update={"prompt": prompt}) for prompt in request.prompts]
    contexts = [
        RequestContext(
            endpoint=ctx.endpoint,
            request_id=f"{ctx.request_id}-{position}",
            api_key_id=ctx.api_key_id,
            route_override=ctx.route_override,
        )
        for position in range(len(asked))
    ]
    prepared = await _all_or_none(
        contexts,
        [gateway.prepared(*each) for each in zip(asked, contexts, strict=True)],
        dropped=lambda position: gateway.ledger.record_stopped(asked[position], contexts[position]),
    )
    gate = asyncio.Semaphore(gateway.batch_concurrency())

    async def answer(sent: TextRequest, own: RequestContext, ready: Prepared) -> Answer:
        started = False
        try:
            async with gate:
                if own.stopped_by is None:
                    started = True
                    return await gateway.complete(sent, own, ready)  # logs itself
            raise asyncio.CancelledError  # let in as the failed one left: it does not go out
        except asyncio.CancelledError:
            if not started:  # stopped by another prompt's failure, or its client left (499)
                gateway.ledger.record_stopped(sent, own)
            raise

    return await _all_or_none(
        contexts, [answer(*each) for each in zip(asked, contexts, prepared, strict=True)]
    )


async def _all_or_none(
    contexts: list[RequestContext],
    work: list[Coroutine[Any, Any, T]],
    dropped: Callable[[int], None] = lambda position: None,
) -> list[T]:
    """The results of all, in order. The first failure stops the others: each context says
    why (`stopped_by`) before its work is cancelled; `dropped` is told of each part whose
    work had ended well and whose result goes unused."""

    async def part(position: int, item: Coroutine[Any, Any, T]) -> T:
        try:
            return await item
        except Exception as error:
            stopped = BatchStopped(position, served(error))
            for other in contexts:
                if other is not contexts[position] and other.stopped_by is None:
                    other.stopped_by = stopped
            raise

    tasks = [asyncio.ensure_future(part(*each)) for each in enumerate(work)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for position, task in enumerate(tasks):
            if not task.cancelled() and task.exception() is None:
                dropped(position)
        raise
