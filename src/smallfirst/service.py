"""The one orchestrator: guard -> retrieval -> route -> call (with fallbacks) -> log.

The only module that knows all rooms. The server hands it a validated request and gets back
an answer, or a primed stream whose first piece already exists, so that errors such as an
over-long prompt or an unreachable upstream become HTTP errors before any byte of a 200 is sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from smallfirst.answers import Answer, RequestContext, StreamAnswer
from smallfirst.backends import Backend, build_backends
from smallfirst.batches import answer_each_prompt
from smallfirst.cascade_step import Draft, LogprobRefusals, judge_draft
from smallfirst.choices import completions_of, usage_of
from smallfirst.completions import Chunk, Completion, ModelInfo
from smallfirst.config import BaselineConfig, Settings
from smallfirst.errors import (
    BeyondThisModel,
    BudgetSpent,
    ContextLengthExceeded,
    InvalidRequest,
    ModelUnavailable,
    PolicyBlocked,
    QueueFull,
    ShuttingDown,
    SmallfirstError,
)
from smallfirst.ledger import UPSTREAM_FAULTS, Ledger, Observer, route_of
from smallfirst.logs import RequestLog, request_cost
from smallfirst.logs.store import LOG_FILE
from smallfirst.privacy_step import (
    Inspection,
    PrivacyStep,
    messages_of,
    permits,
    restore,
    restore_error,
)
from smallfirst.rag_fallback import sources_fitted
from smallfirst.rag_step import Grounded, Grounding, RagStep, grounding_collection
from smallfirst.request_records import (
    answers_text,
    assumed_usage,
    call_cost,
    estimated_cost,
)
from smallfirst.routing.budget import Hold, SpendTracker
from smallfirst.routing.cascade import draft_request
from smallfirst.routing.health import ModelHealth
from smallfirst.routing.planner import Plan
from smallfirst.routing_step import RoutingStep
from smallfirst.streams import replay, started
from smallfirst.token_prompts import read_token_prompt
from smallfirst.truncation import answer_truncated
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest
from smallfirst.usage_so_far import UsageSoFar, counting

T = TypeVar("T")
REASON_ERROR_CHARS = 200  # of a failed tier's error, in the route reason
# Failures that let the next tier in the fallback chain try; a bad request does not.
FALLBACK_ERRORS = (*UPSTREAM_FAULTS, QueueFull, ModelUnavailable)
SHUTTING_DOWN = "the server is shutting down; retry"


@dataclass
class Prepared:
    """A request after the guard and retrieval, with the plan for answering it."""

    request: GenerateRequest
    plan: Plan
    grounded: Grounded | None = None  # None: not grounded in a collection

    @property
    def citations(self) -> list[dict[str, Any]] | None:
        return self.grounded.citations if self.grounded is not None else None


class Gateway:
    def __init__(
        self,
        settings: Settings,
        request_log: RequestLog | None = None,
        observers: Sequence[Observer] = (),
        health: ModelHealth | None = None,
    ) -> None:
        self.settings = settings
        self.backends = build_backends(settings)
        self.request_log = request_log
        self.spend = SpendTracker(settings.routing.budget)
        self.routing = RoutingStep(settings, self.backends, self.spend)
        self.planner = self.routing.planner
        self.health = health or ModelHealth(settings.routing.circuit_breaker)
        self.logprob_refusals = LogprobRefusals(REASON_ERROR_CHARS)
        self._shutting_down = False
        self.privacy = PrivacyStep(settings, self.models())
        self.rag = RagStep(settings.rag, settings.resolved_data_dir)
        self.ledger = Ledger(
            spend=self.spend,
            health=self.health,
            baseline=settings.baseline or _strong_model_baseline(self.planner.strong),
            log_prompts=settings.log_prompts,
            observers=observers,
        )
        if request_log is not None:
            if self.spend.budgeted:  # today's spend so far, this process's earlier runs' too
                request_log.watch_spend(self.spend.others_spent)
            self.ledger.add_observer(request_log.record)

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        """A gateway with the backends `settings` configure, logging requests in its data dir."""
        days = settings.log_retention_days
        retention_s = days * 86400 if days is not None else None
        log = RequestLog(settings.resolved_data_dir / LOG_FILE, retention_s)
        return cls(settings, request_log=log)

    def models(self) -> list[ModelInfo]:
        return [b.info() for b in self.backends.values()]

    def default_model_id(self) -> str:
        return self.settings.default_model or self.planner.weak.id

    def end_answers(self) -> None:
        """The server is shutting down: answers under way end now, each with a 503 error
        (a stream: an error event) that says so, rather than being cut after the grace period;
        and requests not yet at a model go to none."""
        self._shutting_down = True
        for backend in self.backends.values():
            backend.end_answers(ShuttingDown(SHUTTING_DOWN))

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
        if self.request_log is not None:
            self.request_log.close()
        self.rag.close()

    # -- routing -----------------------------------------------------------------------------
    async def prepare(self, request: GenerateRequest, ctx: RequestContext) -> Prepared:
        """guard -> retrieval -> route: what to send, to whom, and with which citations."""
        request = await read_token_prompt(request, self.backends)
        inspection = await self._inspected(request, ctx)
        keep_local: list[str] = []
        if inspection is not None and inspection.keep_local:
            keep_local.append(inspection.keep_local)
        request, grounding = grounding_collection(request)
        private = self._private_collection(grounding) or ctx.earlier_private_collection
        if private is not None:
            keep_local.append(f"collection {private!r} is private")
        if keep_local and not self.planner.has_local:
            await self.rag.refuse_an_unknown_collection(grounding)
            raise _nothing_local(keep_local, "private_collection" if private is not None else None)
        plan = await self.routing.plan(
            request,
            api_key_id=ctx.api_key_id,
            route_override=ctx.route_override,
            keep_local=keep_local,
        )
        if private is not None and not self.planner.tiers.is_local(plan.candidates[0]):
            await self.rag.refuse_an_unknown_collection(grounding)
            raise PolicyBlocked(  # a model asked for by id is not swapped for a local one
                f"collection {private!r} is private: its documents, and the answers quoting"
                " them, stay on local tiers; "
                "ask a local model or model `auto`",
                code="private_collection",
            )
        self.privacy.refuse_early(request, plan.candidates[0], inspection)
        if grounding is None or not isinstance(request, ChatRequest):
            return Prepared(request, plan)
        grounded = await self._grounded_for(plan, request, grounding, ctx)
        if private is not None:  # it stays on local tiers: the retrieved text needs no scan
            if inspection is not None:
                inspection.align_to(messages_of(grounded.request))
            return Prepared(grounded.request, plan, grounded)
        return await self._guarded_retrieval(
            Prepared(grounded.request, plan, grounded), request, grounding, ctx
        )

    async def _inspected(self, request: GenerateRequest, ctx: RequestContext) -> Inspection | None:
        """What the privacy guard finds in `request`, kept in `ctx` (the log counts it even
        when the policy blocks the request, which raises PolicyBlocked)."""
        ctx.inspection = inspection = await self.privacy.inspect(request)
        if inspection is not None and inspection.blocked:
            raise PolicyBlocked(inspection.blocked)
        return inspection

    def private_collection(self, request: GenerateRequest) -> str | None:
        """The private collection `request` is grounded in, if any."""
        return self._private_collection(grounding_collection(request)[1])

    def _private_collection(self, grounding: Grounding | None) -> str | None:
        """The collection `grounding` names when its documents must stay on local tiers."""
        if grounding is not None and self.settings.rag.is_private(grounding.collection):
            return grounding.collection
        return None

    async def _guarded_retrieval(
        self, prepared: Prepared, request: ChatRequest, grounding: Grounding, ctx: RequestContext
    ) -> Prepared:
        """A public collection's text may leave the machine: under the tier's policy, like the
        client's own text (redacted for `redact`; kept local for `local_only` unless a
        remote model was asked for by id, which is then refused). `request`: the client's,
        before grounding."""
        inspection = await self._inspected(prepared.request, ctx)
        if inspection is None or not inspection.keep_local:
            return prepared
        if not self.planner.has_local:
            raise _nothing_local(
                [f"{inspection.keep_local} (retrieved from {grounding.collection!r})"]
            )
        local = self.routing.kept_local(prepared.plan, request, inspection.keep_local)
        if _readers(local) == _readers(prepared.plan):
            return Prepared(prepared.request, local, prepared.grounded)
        # The local plan's contexts hold another number of sources: grounded again
        grounded = await self._grounded_for(local, request, grounding, ctx)
        ctx.inspection = await self.privacy.inspect(grounded.request)
        return Prepared(grounded.request, local, grounded)

    async def _grounded_for(
        self, plan: Plan, request: ChatRequest, grounding: Grounding, ctx: RequestContext
    ) -> Grounded:
        """Grounded within the context of the plan's first model, or of the cascade's small
        model when that is smaller: it reads the prompt first (sized for the strong model,
        the sources never fit it and every draft escalated, "the prompt does not fit"). When
        no source fits beside the conversation there, the draft is left to escalate."""
        first, draft = _readers(plan)
        limit_field = ctx.client_name(request.token_limit_field)
        if draft is not None and draft.context_length < first.context_length:
            try:
                return await self._grounded(request, grounding, draft, limit_field)
            except ContextLengthExceeded:
                pass
        try:
            return await self._grounded(request, grounding, first, limit_field)
        except ContextLengthExceeded as too_long:
            if ctx.truncates:  # the client may well think it asked for this to be done
                too_long.message += (
                    " (truncation 'auto' drops no turns of a conversation to make room for"
                    " retrieved sources)"
                )
            raise

    async def _grounded(
        self, request: ChatRequest, grounding: Grounding, model: ModelInfo, limit_field: str
    ) -> Grounded:
        """`request` grounded in the collection within `model`'s context, and its citations;
        `limit_field`: the answer's limit as the client names it, for the errors."""
        from smallfirst.rag import CollectionNotFound

        async with self.backends[model.id].token_counter() as count_tokens:
            try:
                return await self.rag.ground(
                    request, grounding.collection, model, count_tokens, limit_field
                )
            except CollectionNotFound as missing:
                missing.param = grounding.param
                raise

    # -- the request path ----------------------------------------------------------------------
    async def complete(
        self, request: GenerateRequest, ctx: RequestContext, prepared: Prepared | None = None
    ) -> Answer:
        prepared, draft = await self._begin(request, ctx, prepared)
        request, plan = prepared.request, prepared.plan
        with_logprobs = request.logprob_alternatives is not None
        if draft.kept is not None:
            choices = completions_of(draft.kept, request.n, with_logprobs=with_logprobs)
            usage, model = usage_of(draft.kept), plan.asked_first
        elif request.n > 1:  # streamed, so that a local model answers them side by side
            chunks, model = await self.ledger.logged(
                request,
                ctx,
                plan,
                self._first_answer(prepared, ctx, self._collected, held=draft.unsure),
            )
            choices = completions_of(chunks, request.n, with_logprobs=with_logprobs)
            usage = usage_of(chunks)
        else:
            held = (
                completions_of(draft.unsure, 1, with_logprobs=with_logprobs)[0]
                if draft.unsure is not None
                else None
            )
            completion, model = await self.ledger.logged(
                request,
                ctx,
                plan,
                self._first_answer(prepared, ctx, self._answered_whole, held=held),
            )
            choices, usage = [completion], completion.usage
        route = route_of(model, plan, ctx)
        self.ledger.finish(request, ctx, route, usage, text=answers_text(choices))
        return Answer(choices, usage, route, prepared.citations)

    async def complete_each_prompt(self, request: TextRequest, ctx: RequestContext) -> list[Answer]:
        """A batch of prompts, answered whole or not at all (`batches.py`)."""
        return await answer_each_prompt(self, request, ctx)

    def batch_concurrency(self, model_id: str) -> int:
        """How many prompts of a batch `model_id` answers at once: a local model's slots; a
        remote one the largest local model's (where it falls back)."""
        own = self.backends[model_id].slots_in_use()
        if own is not None:
            return own[1]
        slots = [b.slots_in_use() for b in self.backends.values()]
        return max((total for _, total in filter(None, slots)), default=1)

    async def stream(self, request: GenerateRequest, ctx: RequestContext) -> StreamAnswer:
        prepared, draft = await self._begin(request, ctx)
        request, plan = prepared.request, prepared.plan
        if draft.kept is not None:
            route = route_of(plan.asked_first, plan, ctx)
            kept = self.ledger.observed(request, ctx, route, replay(draft.kept), billed=True)
            return StreamAnswer(route, await started(kept), prepared.citations)

        async def primed(backend: Backend, sent: GenerateRequest) -> AsyncIterator[Chunk]:
            return await started(backend.answers(sent))

        held = replay(draft.unsure) if draft.unsure is not None else None
        chunks, model = await self.ledger.logged(
            request,
            ctx,
            plan,
            self._first_answer(prepared, ctx, primed, held=held, streamed=True),
        )
        route = route_of(model, plan, ctx)
        billed = held is not None and model == plan.cascade_from  # the draft answered
        observed = self.ledger.observed(request, ctx, route, chunks, billed=billed)
        # Begun here, the stream is logged (and its budget hold released) even when its
        # client leaves before reading it: never begun, it was neither.
        return StreamAnswer(route, await started(observed), prepared.citations)

    async def _begin(
        self, request: GenerateRequest, ctx: RequestContext, prepared: Prepared | None = None
    ) -> tuple[Prepared, Draft]:
        """Guard, retrieve and plan (unless `prepared` already); under a cascade, also the
        small model's draft."""
        if prepared is None:
            prepared = await self.prepared(request, ctx)
        if prepared.plan.cascade_from is None:
            return prepared, Draft()
        return prepared, await self._cascade_draft(prepared.request, ctx, prepared.plan)

    async def prepared(self, request: GenerateRequest, ctx: RequestContext) -> Prepared:
        """`prepare`, logged if it fails."""
        ctx.requested_model = request.model
        return await self.ledger.logged(request, ctx, None, self.prepare(request, ctx))

    async def _cascade_draft(
        self, request: GenerateRequest, ctx: RequestContext, plan: Plan
    ) -> Draft:
        """The small model's whole answer, kept if it is sure enough of it. It writes at most
        `routing.cascade.max_tokens` (unless the client asked for fewer): a longer answer is
        no small model's job. A small model that fails, that refused the logprobs a draft is
        judged by (then not asked again), or that the request is beyond (the prompt does not
        fit it, its grammar cannot express the schema), escalates."""
        weak = plan.cascade_from
        assert weak is not None
        cap = self.settings.routing.cascade.max_tokens
        capped = request.token_limit is None or request.token_limit > cap

        async def draft() -> list[Chunk] | None:
            refuses_logprobs = self.logprob_refusals.known(weak.id, request)
            if refuses_logprobs or self.health.cooling_down_s(weak.id):  # skipped: not tried
                plan.reason += f"; escalated: {refuses_logprobs or self.health.describe(weak.id)}"
                return None
            ctx.tried.append(weak.id)  # unless kept, below
            try:
                asked = draft_request(request, cap if capped else None)
                return await self._call(weak, ctx, asked, self._collected)
            except BeyondThisModel as beyond:  # the strong model may take it: no 400 yet
                plan.reason += f"; escalated: {beyond.beyond(weak.id)}"
            except InvalidRequest as error:
                if not (refused := self.logprob_refusals.refused(weak.id, error, request)):
                    raise
                plan.reason += f"; escalated: {refused}"
            except FALLBACK_ERRORS as error:
                self._failed(weak, error, plan, "; escalated: ")
                if error.code != QueueFull.code:  # broken, not busy: not asked again below
                    plan.candidates = [m for m in plan.candidates if m != weak]
            return None

        drafted = await self.ledger.logged(request, ctx, plan, draft(), answering=weak)
        if drafted is None:
            return Draft()
        self.health.succeeded(weak.id)
        cascade, traffic = self.settings.routing.cascade, self.routing.traffic
        judged = judge_draft(drafted, request, plan, cascade, traffic, capped=capped)
        if judged.kept is not None:
            ctx.tried.pop()
        return judged

    def _failed(self, model: ModelInfo, error: SmallfirstError, plan: Plan, lead: str) -> None:
        """`model` failed in a way the next one may not: count it against the model (not a
        busy local queue) and say so in the reason."""
        if error.code != QueueFull.code:  # a busy local model is not a broken one
            self.health.failed(model.id, error.shareable_message, error.retry_after_s)
        plan.reason += f"{lead}{model.id} failed ({error.shareable_message[:REASON_ERROR_CHARS]})"

    async def _collected(self, backend: Backend, request: GenerateRequest) -> list[Chunk]:
        return [chunk async for chunk in backend.answers(request)]

    async def _answered_whole(self, backend: Backend, request: GenerateRequest) -> Completion:
        """One answer, not streamed: the only call an upstream goes on writing (and billing)
        after it is abandoned; streams stop when their connection closes."""
        return await backend.complete(request)

    async def _call(
        self,
        model: ModelInfo,
        ctx: RequestContext,
        request: GenerateRequest,
        call: Callable[[Backend, GenerateRequest], Awaitable[T]],
        findings: Inspection | None = None,
    ) -> T:
        """Send `model` what the privacy policy lets it see; restore redacted values after.
        `findings`: the guard's, when `request` is the inspected one shortened."""
        if self._shutting_down:
            raise ShuttingDown(SHUTTING_DOWN)
        ctx.calling = model
        remote = not self.planner.tiers.is_local(model)
        hold = self._hold_budget(model, ctx, request) if remote else None
        sent, guard = self.privacy.request_for(request, model, findings or ctx.inspection)
        ctx.counted[model.id] = UsageSoFar()
        called = counting.set(ctx.counted[model.id])
        # Cancelled under way (its client left), ended by the shutdown, timed out once the
        # upstream had it, or broken off after its answer began, a call to an upstream (of any
        # tier: nothing here counts its tokens) was read, and an answer not streamed is
        # written to the end all the same: it is billed the budget's estimate at the model's
        # prices, or a client that times out early (or a slow upstream) would spend without
        # limit. A stream stops when its connection closes: its prompt is billed. One that
        # still waited for a connection or to be tried again never reached it, as a local
        # model's call still queued.
        try:
            answered = await call(self.backends[model.id], sent)
        except (asyncio.CancelledError, SmallfirstError) as ended:
            if model.upstream and _received(ended) and not ctx.only_queued(model):
                whole = call == self._answered_whole
                ctx.abandoned = assumed_usage(request, answered=whole)
                ctx.spent_usd += request_cost(model, ctx.abandoned)
            elif hold is not None:  # refused unbilled (truncation's tries are several 400s)
                ctx.holds.remove(hold)
                self.spend.release(hold)
            if isinstance(ended, SmallfirstError):
                restore_error(ended, guard)
            raise
        finally:
            counting.reset(called)
        result: T = restore(answered, guard)
        ctx.spent_usd += call_cost(model, result)
        return result

    def _hold_budget(self, model: ModelInfo, ctx: RequestContext, request: GenerateRequest) -> Hold:
        """Hold the call's estimated cost as spent until the request ends, or refuse it if a
        daily budget is spent, the calls under way included (checked with no await before
        the hold, so requests arriving together cannot all pass)."""
        spent = self.spend.exhausted(ctx.api_key_id)
        if spent:
            raise BudgetSpent.remote(spent, model.id)
        hold = self.spend.hold(estimated_cost(model, request), ctx.api_key_id)
        ctx.holds.append(hold)
        return hold

    async def _first_answer(
        self,
        prepared: Prepared,
        ctx: RequestContext,
        call: Callable[[Backend, GenerateRequest], Awaitable[T]],
        *,
        held: T | None = None,
        streamed: bool = False,
    ) -> tuple[T, ModelInfo]:
        """Try the plan's models in order; a failing tier falls to the next one (the reason
        says why), and a model that keeps failing is skipped for a while (`routing/health.py`).
        A request beyond a router's weak choice (a prompt too long for it, a schema its
        grammar cannot express) goes to the roomier models of the plan. A fallback with a
        smaller context than the retrieved sources were sized for gets those it holds
        (`rag_fallback.py`); `prepared` then has the answering model's sources.
        `held`: the cascade's unsure draft, the answer when the chain comes down to its model
        (it is not asked again). `streamed`: the result is a stream that has only begun; how
        it ends tells the model's health (`Ledger.observed`)."""
        plan, request, grounded = prepared.plan, prepared.request, prepared.grounded
        findings: Inspection | None = None  # the guard's for `request` (None: ctx.inspection)
        last_error: SmallfirstError | None = None
        cooling: list[ModelInfo] = []  # skipped for failing (since the request went up)
        candidates = list(plan.candidates)
        for model in candidates:  # grows (once) when the request is beyond a model
            if held is not None and model == plan.cascade_from:
                plan.reason += f"; so {model.id}'s draft answers"
                prepared.grounded = grounded  # the sources it read
                return held, model
            if self.health.cooling_down_s(model.id):
                plan.reason += f"; {self.health.describe(model.id)}"
                cooling.append(model)
                continue
            if (last_error or cooling) and not permits(ctx.inspection, model):
                # a fallback the policy keeps the request from: its refusal (a 400) hid the
                # tier's failure, and the fallbacks after it were never asked
                plan.reason += f"; {model.id} skipped: the privacy policy keeps the request from it"
                continue
            if grounded is not None:
                fitted = await sources_fitted(self, grounded, model, plan, ctx)
                if fitted is None:
                    continue
                prepared.grounded = fitted.grounded
                request, findings = fitted.grounded.request, fitted.findings
            try:
                result = await self._call(model, ctx, request, call, findings)
            except BeyondThisModel as error:
                roomier = [m for m in plan.roomier if m not in candidates]
                if roomier:
                    plan.reason += f"; {error.beyond(model.id)}, so it goes up"
                    candidates.extend(roomier)
                    cooling = []
                elif held is not None:  # the draft answered it: no 400 to shorten the prompt
                    plan.reason += f"; {error.beyond(model.id)}"
                elif isinstance(last_error, FALLBACK_ERRORS):
                    raise last_error from error  # a fallback too small: the tier's failure
                elif not (ctx.truncates and isinstance(error, ContextLengthExceeded)):
                    raise
                else:  # a last resort: no model the request may go to takes it whole
                    answer = partial(self._call, model, ctx, call=call)
                    inspection = findings or ctx.inspection
                    truncated = answer_truncated(
                        self, model, plan, inspection, request, error, answer
                    )
                    return self._answered(model, await truncated, streamed=streamed)
                last_error = error
                ctx.tried.append(model.id)
                continue
            except BudgetSpent as error:  # reached by the calls under way since planning
                plan.reason += f"; {model.id} skipped: {error.spent}"
                last_error = error
                continue
            except FALLBACK_ERRORS as error:
                self._failed(model, error, plan, "; ")
                last_error = error
                ctx.tried.append(model.id)
                continue
            return self._answered(model, result, streamed=streamed)
        if held is not None and plan.cascade_from is not None:  # not in the fallback chain
            plan.reason += f"; so {plan.cascade_from.id}'s draft answers"
            prepared.grounded = grounded
            return held, plan.cascade_from
        if isinstance(last_error, BeyondThisModel) and cooling:  # the roomier models that
            # take it are skipped for now: a 400 told the client to shorten a prompt that fits
            raise self._all_cooling_down(cooling) from last_error
        raise last_error or self._all_cooling_down(cooling)

    def _answered(self, model: ModelInfo, result: T, *, streamed: bool) -> tuple[T, ModelInfo]:
        """`model`'s answer, a success for its health (a stream's end tells, when it ends)."""
        if not streamed:
            self.health.succeeded(model.id)
        return result, model

    def _all_cooling_down(self, models: Sequence[ModelInfo]) -> ModelUnavailable:
        error = ModelUnavailable("; ".join(self.health.describe(m.id) for m in models))
        error.retry_after_s = math.ceil(min(self.health.cooling_down_s(m.id) for m in models))
        return error


def _received(ended: BaseException) -> bool:
    """Whether a call that `ended` so had reached an upstream that answers it (and bills it):
    it timed out or broke off once the upstream had it; or it was under way when its client
    left or the shutdown ended it (a call not yet sent is told apart by `ctx.only_queued`)."""
    if isinstance(ended, UPSTREAM_FAULTS):
        return ended.received
    return isinstance(ended, ShuttingDown) or not isinstance(ended, SmallfirstError)


def _strong_model_baseline(model: ModelInfo) -> BaselineConfig:
    """Without a configured baseline, `cost saved` compares with the strong tier's model."""
    return BaselineConfig(
        model=model.id,
        input_cost_per_1m=model.input_cost_per_1m,
        cached_input_cost_per_1m=model.cached_input_cost_per_1m,
        output_cost_per_1m=model.output_cost_per_1m,
    )


def _readers(plan: Plan) -> tuple[ModelInfo, ModelInfo | None]:
    """Who reads a plan's prompt: its first model, and the cascade's small model before it."""
    return plan.candidates[0], plan.cascade_from


def _nothing_local(reasons: list[str], code: str | None = None) -> PolicyBlocked:
    """A request that must stay on local tiers, for `reasons`, on a gateway without a local
    model (it was a 500: the planner found nowhere local to send it)."""
    return PolicyBlocked(
        f"{'; '.join(reasons)}: this request must stay on local tiers, and this gateway has"
        " no local model",
        code=code,
    )
