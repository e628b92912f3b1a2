"""Which models to try for a request, in order, and why: the routing step of `service.py`.

A model asked for by id is tried alone. For `auto`: a tier the client forced (header or
`route`), else the cascade, else the router's decision within the strong-call budget; on local
tiers only when the privacy policy or a spent budget says so (`keep_local`). Last, a request
that offers tools goes to models that can call them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from smallfirst.backends import Backend
from smallfirst.config import AUTO_MODEL_ID, EMBEDDING_MODEL_IDS, Settings
from smallfirst.errors import (
    BudgetSpent,
    ConfigError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
)
from smallfirst.routing.budget import SpendTracker
from smallfirst.routing.cascade import CASCADE_HAS_NO_QUALITY_TARGET
from smallfirst.routing.planner import Plan, RoutePlanner
from smallfirst.routing.traffic import TrafficCalibration, decide_within_budget
from smallfirst.types import TIERS, ChatRequest, GenerateRequest, TextRequest, Tier

if TYPE_CHECKING:
    from smallfirst.routing.base import Router

AUTO_MODEL = AUTO_MODEL_ID  # the model id that asks the router to choose
log = logging.getLogger("smallfirst.routing")


class RoutingStep:
    def __init__(
        self, settings: Settings, backends: Mapping[str, Backend], spend: SpendTracker
    ) -> None:
        self.config = settings.routing
        self.planner = RoutePlanner(settings.routing, [b.info() for b in backends.values()])
        self.traffic = TrafficCalibration()
        self.router: Router | None = None  # loaded on first use, or by `warm_up`
        self._loading = asyncio.Lock()
        self._backends = backends
        self._spend = spend

    async def plan(
        self,
        request: GenerateRequest,
        *,
        api_key_id: str | None,
        route_override: str | None,
        keep_local: Sequence[str] = (),
    ) -> Plan:
        """Which models to try for this request, in order, and why."""
        override = _tier_asked(route_override or request.route)
        if request.model != AUTO_MODEL:
            return self._for_tools(self._asked_by_id(request, api_key_id), request)
        _refuse_what_auto_cannot_answer(request)
        budget_spent = self._spend.exhausted(api_key_id)
        if budget_spent and not self.planner.has_local:
            raise BudgetSpent.nothing_local(budget_spent)
        local_reasons = [*keep_local, *([f"{budget_spent}"] if budget_spent else [])]
        kept_local_by = _kept_local_by(policy=bool(keep_local), budget=budget_spent is not None)
        plan = await self._routed(request, override, kept_local_by=kept_local_by)
        if local_reasons:
            plan.reason += f"; local tiers only: {', '.join(local_reasons)}"
        return self._for_tools(plan, request, local_only=", ".join(local_reasons))

    def _asked_by_id(self, request: GenerateRequest, api_key_id: str | None) -> Plan:
        """The model the request names, alone; a remote one only while the budget lasts."""
        backend = self._backends.get(request.model)
        if backend is None and request.model in EMBEDDING_MODEL_IDS:  # its id and its alias
            raise InvalidRequest(
                f"`{request.model}` is an embedding model: send it to /v1/embeddings",
                param="model",
            )
        if backend is None:
            raise ModelNotFound.named(request.model)
        model = backend.info()
        spent = None if self.planner.tiers.is_local(model) else self._spend.exhausted(api_key_id)
        if spent:
            raise BudgetSpent.remote(spent, model.id)
        return Plan([model], "none", "model requested by id")

    async def _routed(
        self, request: GenerateRequest, override: Tier | None, *, kept_local_by: str
    ) -> Plan:
        """`auto`'s plan: the tier forced, else the cascade, else the router's decision;
        `kept_local_by`: what keeps it on local tiers ("" when nothing does)."""
        local_only = bool(kept_local_by)
        if override is not None:
            return self.planner.forced(
                override, f"route override: {override}", local_only=local_only
            )
        if self.config.router == "cascade":
            return self.planner.cascade(local_only=local_only, strong_budget=self._budget(request))
        return await self._decided(request, kept_local_by=kept_local_by)

    def kept_local(self, plan: Plan, request: GenerateRequest, why: str) -> Plan:
        """`plan` moved to local tiers for `why`, found after routing; a model asked for by
        id is not swapped (its request is refused when it is sent)."""
        if plan.router == "none" or all(
            self.planner.tiers.is_local(m) for m in [*plan.candidates, *plan.roomier]
        ):
            return plan
        plan = self.planner.moved_local(plan)
        plan.reason += f"; local tiers only: {why}"
        return self._for_tools(plan, request, local_only=why)

    async def warm_up(self) -> None:
        """Load the router and score once (a learned router's encoder starts on first use),
        so the first `auto` request does not pay for it (~0.3 s measured)."""
        if self.config.router != "cascade":
            router = await self._load_router()
            await asyncio.to_thread(router.score, [{"role": "user", "content": "Hello"}])

    def _budget(self, request: GenerateRequest) -> float | None:
        """The cascade's strong-call budget; it has no quality table for `min_quality`."""
        if request.min_quality is not None:
            raise InvalidRequest(CASCADE_HAS_NO_QUALITY_TARGET, param="min_quality")
        return self._max_strong_share(request)

    async def _decided(self, request: GenerateRequest, *, kept_local_by: str) -> Plan:
        router = await self._load_router()
        max_strong_share = self._max_strong_share(request)
        try:
            decision = await asyncio.to_thread(
                decide_within_budget,
                router,
                _router_messages(request),
                self.traffic,
                threshold=self.config.threshold,
                max_strong_share=max_strong_share,
                min_quality=_first(request.min_quality, self.config.min_quality),
            )
        except ConfigError as exc:  # a quality target the router has no calibration for
            # It said "...; train a learned artifact or give an explicit threshold": neither
            # is a client's to do.
            raise InvalidRequest(
                f"min_quality needs a router with a calibration table (a learned artifact);"
                f" this gateway's router {router.name!r} has none: give max_strong_share"
                " instead, which every router meets",
                param="min_quality",
            ) from exc
        return self.planner.from_decision(
            decision, kept_local_by=kept_local_by, strong_allowed=max_strong_share != 0
        )

    def _for_tools(self, plan: Plan, request: GenerateRequest, *, local_only: str = "") -> Plan:
        if isinstance(request, ChatRequest) and request.wants_tools:
            # the strong-call budget bounds the router's choices, not a model or tier asked for
            routed = plan.router not in ("none", "override")
            no_strong = routed and self._max_strong_share(request) == 0
            return self.planner.for_tools(plan, local_only=local_only, strong_allowed=not no_strong)
        return plan

    def _max_strong_share(self, request: GenerateRequest) -> float | None:
        return _first(request.max_strong_share, self.config.max_strong_share)

    async def _load_router(self) -> Router:
        """The router, loaded once (concurrent first requests wait for the one load). One
        that cannot be loaded (its artifact gone or damaged since the start) is a 503 for
        `auto` requests; the reason, which names server paths, goes to the log."""
        from smallfirst.routing.base import load_router

        async with self._loading:
            if self.router is None:
                try:
                    self.router = await asyncio.to_thread(load_router, self.config.router)
                except ConfigError as exc:
                    log.error("router failed to load: %s", exc)
                    raise ModelUnavailable(
                        "model `auto` cannot route now: its router failed to load (the server"
                        " log says why); ask for a model by id",
                        param="model",
                        code="router_unavailable",
                    ) from exc
        return self.router


def _kept_local_by(*, policy: bool, budget: bool) -> str:
    """What keeps a request on local tiers, as its reason names it ("" when nothing does):
    the privacy policy or a private collection, a spent daily budget, or both (a spent budget
    was said to be "policy")."""
    causes = [
        cause for cause, applies in (("policy", policy), ("the spent budget", budget)) if applies
    ]
    return " and ".join(causes)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _refuse_what_auto_cannot_answer(request: GenerateRequest) -> None:
    """Fields that only make sense for one model the client chose."""
    if isinstance(request, TextRequest) and request.suffix is not None:
        raise InvalidRequest(
            "suffix (fill in the middle) needs a model asked for by id that can do it,"
            " such as a local code model",
            param="suffix",
        )
    if request.logit_bias:
        raise InvalidRequest(
            "logit_bias names token ids of one model's vocabulary, and `auto` (or a"
            " `rag/` collection) may answer with any model: ask for a model by id",
            param="logit_bias",
        )


def _router_messages(request: GenerateRequest) -> list[dict[str, str]]:
    if isinstance(request, ChatRequest):
        return [{"role": m.role, "content": m.text} for m in request.messages]
    return [{"role": "user", "content": request.prompt_text}]


def _tier_asked(override: str | None) -> Tier | None:
    """The tier a route override forces (None: let the router pick). Checked even for a
    model asked for by id, which it does not move: a typo is told, not ignored."""
    if not override or override == AUTO_MODEL:
        return None
    if override not in TIERS:
        raise InvalidRequest(
            f"x-smallfirst-route must be edge, onprem, cloud or auto, not {override!r}",
            param="route",
        )
    return override
