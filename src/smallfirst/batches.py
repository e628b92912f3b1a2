"""A batch of prompts (`/v1/completions` with a list): each prompt is guarded, routed,
answered and logged as a request of its own (id `<batch id>-<position>`), and the batch is
answered whole or not at all.

At most as many prompts are answered at once by a local model as it has slots, so that a
batch does not fill its queue by itself (`Gateway.batch_concurrency`). Every prompt is guarded
and routed before any is answered: one that the privacy policy refuses fails the batch before
the others go out. The first failure stops the rest, and the client's error says which prompt
it was (`prompt <position> of the batch: ...`, param `prompt.<position>` for a prompt's own
fault); the others are logged with the status the client got (code `batch_stopped`), not as
requests their client left; so are prompts already guarded and routed when another was
refused. Prompts answered before it stay logged as answered: their answers were made and paid
for, though the client gets the batch's error. A client that leaves has every prompt logged
as 499, those still waiting their turn too.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from smallfirst.answers import Answer, RequestContext
from smallfirst.errors import BatchStopped, SmallfirstError, served
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
    gates: dict[str, asyncio.Semaphore] = {}  # per model that answers first

    def gate_of(ready: Prepared) -> asyncio.Semaphore:
        first = ready.plan.asked_first.id
        if first not in gates:
            gates[first] = asyncio.Semaphore(gateway.batch_concurrency(first))
        return gates[first]

    async def answer(sent: TextRequest, own: RequestContext, ready: Prepared) -> Answer:
        started = False
        try:
            async with gate_of(ready):
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
        contexts[position].tag_log_lines()  # in this part's task alone
        try:
            return await item
        except Exception as error:
            failed = served(error)
            first = contexts[position].stopped_by is None  # what the client is told
            stopped = BatchStopped(position, failed)
            for other in contexts:
                if other is not contexts[position] and other.stopped_by is None:
                    other.stopped_by = stopped
            if first and isinstance(error, SmallfirstError):
                raise _naming_the_prompt(error, position) from error
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


def _naming_the_prompt(error: SmallfirstError, position: int) -> SmallfirstError:
    """The batch's error, saying which prompt failed: one prompt too long or blocked among
    twenty was otherwise a 400 about "the prompt". A copy: an error may be shared (the
    shutdown's is every request's)."""
    named = copy.copy(error)
    named.message = f"prompt {position} of the batch: {error.message}"
    if error.param == "prompt":
        named.param = f"prompt.{position}"
    return named
