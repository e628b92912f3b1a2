"""Booking a request when it ends: its row for the observers (the request log, /metrics),
what it spent against the daily budgets (its holds released), and how a stream ended as its
model's health. The gateway (`service.py`) answers; this is where each answer, failure and
refusal is written down, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from smallfirst.answers import RequestContext, RouteInfo
from smallfirst.choices import ChoicesSoFar
from smallfirst.completions import Chunk, ModelInfo, Usage
from smallfirst.config import BaselineConfig
from smallfirst.errors import (
    CLIENT_CLOSED_REQUEST,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeout,
    served,
)
from smallfirst.logs import RequestRecord, request_cost
from smallfirst.request_records import (
    UNKNOWN_MODEL,
    Ending,
    answered_record,
    answers_text,
    embeddings_record,
    estimated_usage,
    rejection_record,
)
from smallfirst.routing.budget import SpendTracker
from smallfirst.routing.health import ModelHealth
from smallfirst.routing.planner import Plan
from smallfirst.streams import close_stream
from smallfirst.types import GenerateRequest

Observer = Callable[[RequestRecord], None]
T = TypeVar("T")
# Failures of an upstream; a stream that keeps breaking off with one counts against its model.
UPSTREAM_FAULTS = (UpstreamError, UpstreamTimeout)


class Ledger:
    def __init__(
        self,
        *,
        spend: SpendTracker,
        health: ModelHealth,
        baseline: BaselineConfig,
        log_prompts: bool,
        observers: Sequence[Observer] = (),
    ) -> None:
        self._spend = spend
        self._health = health
        self.baseline = baseline  # every request is priced on it too: `cost saved`
        self._log_prompts = log_prompts
        self._observers: list[Observer] = list(observers)

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    async def logged(
        self,
        request: GenerateRequest,
        ctx: RequestContext,
        plan: Plan | None,
        step: Awaitable[T],
        answering: ModelInfo | None = None,
    ) -> T:
        """Await `step`; if it fails, the request is logged as failed before the error goes up
        (as 499 when it was cancelled: the client went away before the answer), with the
        model `answering` in it (default: the plan's first), and the tokens its call was
        billed (`ctx.abandoned`) or its engine counted, at its prices."""
        try:
            return await step
        except (Exception, asyncio.CancelledError) as error:
            route = _failed_route(plan, ctx, answering) if plan else None
            failed = served(error)
            told = failed or ctx.stopped_by  # cancelled: by its client, or by the gateway
            status = told.status if told else CLIENT_CLOSED_REQUEST
            counted = ctx.counted_usage(route.model) if route and not ctx.abandoned else None
            if route and counted:  # a local model's cut call: as a cut stream is costed
                ctx.spent_usd += request_cost(route.model, counted)
            usage = ctx.abandoned or counted or Usage()
            read = route is None or not ctx.only_queued(route.model)
            self.finish(request, ctx, route, usage, status=status, error=told, read=read)
            if failed is None or failed is error:
                raise
            raise failed from error

    async def observed(
        self,
        request: GenerateRequest,
        ctx: RequestContext,
        route: RouteInfo,
        chunks: AsyncIterator[Chunk],
        *,
        billed: bool = False,
    ) -> AsyncIterator[Chunk]:
        """Yield the stream and log it when it ends (`billed`: its cost is already counted)."""
        ttft: float | None = None
        usage = Usage()
        # what the log keeps of the answers, not each chunk: a long stream holds its text
        answers = ChoicesSoFar(request.n, with_logprobs=False)
        status, error = CLIENT_CLOSED_REQUEST, None  # unless the stream ends or fails
        try:
            async for chunk in chunks:
                ttft = ttft or time.perf_counter()
                answers.add(chunk)
                usage = chunk.usage or usage
                yield chunk
            status = 200
            self._health.succeeded(route.model.id)
        except Exception as exc:
            error = served(exc)
            status = error.status
            if isinstance(exc, UPSTREAM_FAULTS):  # a stream that keeps breaking off
                self._health.failed(route.model.id, error.shareable_message, error.retry_after_s)
            if error is exc:
                raise
            raise error from exc
        finally:
            await close_stream(chunks)
            if status == CLIENT_CLOSED_REQUEST and ctx.stopped_by is not None:
                status, error = ctx.stopped_by.status, ctx.stopped_by  # closed by the gateway
            text = answers_text(answers.completions())
            if usage == Usage():
                usage = ctx.counted_usage(route.model) or self._estimated(
                    request, route.model, answers.began, status, text
                )
            if not billed:
                ctx.spent_usd += request_cost(route.model, usage)
            self.finish(
                request, ctx, route, usage, status=status, error=error, text=text, ttft=ttft
            )

    def _estimated(
        self, request: GenerateRequest, model: ModelInfo, began: bool, status: int, text: str
    ) -> Usage:
        """A stream's tokens when it was cut before its usage came and no engine here counted
        them: it was paid for all the same (a client left, say), an upstream's stream's prompt
        (whatever its tier) even when no token came."""
        if began or (model.upstream and status == CLIENT_CLOSED_REQUEST):
            return estimated_usage(request, text)
        return Usage()

    def record_rejection(
        self,
        endpoint: str,
        error: SmallfirstError,
        api_key_id: str | None = None,
        asked: str = UNKNOWN_MODEL,
    ) -> str:
        """Log a request refused before it could be read (e.g. an invalid body): no model
        answered; `asked`, the one the body named. Returns the log row's id."""
        return self._notify(rejection_record(endpoint, error, api_key_id, asked))

    def record_stopped(self, request: GenerateRequest, ctx: RequestContext) -> None:
        """Log a request the gateway stopped before any model had it (`ctx.stopped_by`)."""
        error = ctx.stopped_by
        status = error.status if error else CLIENT_CLOSED_REQUEST
        self.finish(request, ctx, None, Usage(), status=status, error=error)

    def record_embeddings(
        self,
        model: str,
        api_key_id: str | None,
        started: float,
        *,
        tokens: int = 0,
        error: SmallfirstError | None = None,
    ) -> str:
        """Log an embeddings request the encoder had (no routing: one local encoder, tier
        "embeddings"); one refused before it is a rejection. Returns the row's id."""
        return self._notify(embeddings_record(model, api_key_id, started, tokens, error))

    def _notify(self, record: RequestRecord) -> str:
        for observe in self._observers:
            observe(record)
        return record.id

    def finish(
        self,
        request: GenerateRequest,
        ctx: RequestContext,
        route: RouteInfo | None,
        usage: Usage,
        *,
        status: int = 200,
        error: SmallfirstError | None = None,
        text: str | None = None,
        ttft: float | None = None,
        read: bool = True,
    ) -> None:
        """The request's end: its budget holds released, its spend added, its row written
        (`read`: False when its client left while it waited for its model's slot)."""
        for hold in ctx.holds:
            self._spend.release(hold)
        ctx.holds.clear()
        self._spend.add(ctx.spent_usd, ctx.api_key_id)
        ended = Ending(usage, status, error, text, ttft, read)
        keep_text = self._log_prompts
        self._notify(
            answered_record(request, ctx, route, ended, self.baseline, keep_text=keep_text)
        )


def route_of(model: ModelInfo, plan: Plan, ctx: RequestContext) -> RouteInfo:
    """The route of an answer by `model`, after the models tried before it. (A cascade's
    unsure draft that answered when the stronger models failed was listed as escalated from
    too: `x-smallfirst-escalations: tiny,big` on tiny's answer; QA.)"""
    before = tuple(m for m in ctx.tried if m != model.id)
    return RouteInfo(model, plan.router, plan.reason, plan.score, plan.threshold, before)


def _failed_route(plan: Plan, ctx: RequestContext, answering: ModelInfo | None) -> RouteInfo:
    """A failed request's route: the model whose failure ended it (`answering`, else the
    one last asked to answer, else the plan's first), after the models tried before it.
    (The failing model counted as an escalation of its own: a model asked for by id that
    failed was "escalated or fell back"; and a client that left while the fallback answered
    was put down to the model that had failed before.)"""
    model = answering or ctx.calling or plan.candidates[0]
    before = [m for m in ctx.tried if m != model.id]
    return RouteInfo(model, plan.router, plan.reason, plan.score, plan.threshold, tuple(before))
