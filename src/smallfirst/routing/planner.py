"""Serve-time routing: which tiers to try, in which order, and why.

No I/O here: the service hands in the router's decision and the spend so far, and gets back a
plan. Scoring itself (which may run the embedding model) is done by the service off the event
loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from smallfirst.completions import ModelInfo
from smallfirst.config import RoutingConfig
from smallfirst.errors import InvalidRequest
from smallfirst.routing.base import RouteDecision
from smallfirst.types import TIERS, Tier

# edge and on-prem models run on premises (in-process, or e.g. a vLLM box on the LAN): data
# sent to them never leaves the organisation. Only the cloud tier is remote.
LOCAL_TIERS = {"edge", "onprem"}


@dataclass
class Plan:
    """Models to try in order (the first answers unless it fails), and the reasons."""

    candidates: list[ModelInfo]
    router: str
    reason: str
    score: float | None = None
    threshold: float | None = None
    cascade_from: ModelInfo | None = None  # cascade: ask this model first, maybe escalate
    strong_budget: float | None = None  # cascade: the share of recent drafts that may escalate
    # a router's weak choice: where a prompt too long for the candidates goes instead
    roomier: list[ModelInfo] = field(default_factory=list)

    @property
    def asked_first(self) -> ModelInfo:
        """The model asked first: the cascade's small model, else the first candidate."""
        return self.cascade_from or self.candidates[0]


class TierMap:
    """The first configured model of each tier answers for that tier."""

    def __init__(self, models: list[ModelInfo]) -> None:
        self.by_tier: dict[Tier, ModelInfo] = {}
        for model in models:
            self.by_tier.setdefault(model.tier, model)

    def get(self, tier: Tier) -> ModelInfo | None:
        return self.by_tier.get(tier)

    def available(self, preferred: Tier, upward: bool) -> ModelInfo | None:
        """`preferred`, else the nearest tier above (upward) or below it that has a model."""
        order = list(TIERS) if upward else list(reversed(TIERS))
        start = order.index(preferred)
        for tier in order[start:] + order[:start][::-1]:
            if tier in self.by_tier:
                return self.by_tier[tier]
        raise LookupError("no models configured")

    def is_local(self, model: ModelInfo) -> bool:
        return model.tier in LOCAL_TIERS


class RoutePlanner:
    def __init__(self, config: RoutingConfig, models: list[ModelInfo]) -> None:
        self.config = config
        self.tiers = TierMap(models)
        self.models = models

    @property
    def has_local(self) -> bool:
        """Whether any model runs on this machine (a request kept local has somewhere to go)."""
        return any(self.tiers.is_local(model) for model in self.models)

    @property
    def weak(self) -> ModelInfo:
        found = self.tiers.available(self.config.weak_tier, upward=True)
        assert found is not None
        return found

    @property
    def strong(self) -> ModelInfo:
        found = self.tiers.available(self.config.strong_tier, upward=False)
        assert found is not None
        return found

    def with_fallbacks(self, first: ModelInfo, *, local_only: bool = False) -> list[ModelInfo]:
        chain = [first]
        for tier in self.config.fallbacks.get(first.tier, []):
            model = self.tiers.get(tier)
            if model is not None and model not in chain:
                chain.append(model)
        if local_only:
            chain = [m for m in chain if self.tiers.is_local(m)] or [self.local_fallback()]
        return chain

    def kept_local(self, model: ModelInfo) -> ModelInfo:
        """Where `model`'s request goes when it must stay on local tiers: the first local
        model of its fallback chain (the cloud's: on-prem before edge), else the first local
        one. (It went to the first local tier, edge, even with an on-prem model configured:
        a strong choice, or a cascade's escalation, kept local by the privacy policy or a
        spent budget never reached on-prem; QA.)"""
        return self.with_fallbacks(model, local_only=True)[0]

    def local_fallback(self) -> ModelInfo:
        for tier in TIERS:
            model = self.tiers.get(tier)
            if model is not None and self.tiers.is_local(model):
                return model
        raise LookupError("no local model configured")

    def forced(self, tier: Tier, why: str, *, local_only: bool = False) -> Plan:
        """A tier chosen by the caller (header/body override) or by a policy."""
        model = self.tiers.get(tier)
        if model is None:
            model = self.tiers.available(tier, upward=False)
            assert model is not None
            why += f"; no {tier} model configured, so {model.id} ({model.tier}) answers"
        return Plan(self.with_fallbacks(model, local_only=local_only), "override", why)

    def from_decision(
        self, decision: RouteDecision, *, kept_local_by: str = "", strong_allowed: bool = True
    ) -> Plan:
        """`kept_local_by`: what keeps the request on local tiers ("policy", "the spent
        budget"; "" when nothing does), named in the reason. `strong_allowed`: False under a
        strong-call budget of none, which a prompt too long for the weak model does not lift
        either."""
        local_only = bool(kept_local_by)
        target = self.strong if decision.strong else self.weak
        verdict = "strong" if decision.strong else "weak"
        compare = ">=" if decision.strong else "<"
        reason = f"score {decision.score:.3f} {compare} {decision.threshold:.3f} -> {verdict}"
        if decision.basis:
            reason += f" ({decision.basis})"
        wanted = self.config.strong_tier if decision.strong else self.config.weak_tier
        if target.tier != wanted:
            reason += f"; no {wanted} model configured, so {target.id} ({target.tier}) answers"
        if local_only and not self.tiers.is_local(target):
            target = self.kept_local(target)
            reason += f"; kept local by {kept_local_by}, so {target.id} ({target.tier}) answers"
        candidates = self.with_fallbacks(target, local_only=local_only)
        return Plan(
            candidates,
            decision.router,
            reason,
            score=decision.score,
            threshold=decision.threshold,
            roomier=self._roomier(candidates, local_only=local_only) if strong_allowed else [],
        )

    def _roomier(self, candidates: list[ModelInfo], *, local_only: bool) -> list[ModelInfo]:
        """The strong model and its fallbacks that the candidates do not already include,
        cheapest tier first (local ones only, under `local_only`)."""
        chain = self.with_fallbacks(self.strong, local_only=local_only)
        roomier = [m for m in chain if m.id not in _ids(candidates)]
        return sorted(roomier, key=lambda m: TIERS.index(m.tier))

    def cascade(self, *, local_only: bool = False, strong_budget: float | None = None) -> Plan:
        """`strong_budget`: the share of recent drafts that may escalate (None: those the
        small model is unsure of); with none, the small model answers whatever it writes."""
        strong, weak = self.strong, self.weak
        kept_local = local_only and not self.tiers.is_local(strong)
        if local_only:  # a remote small model's draft would leave the machine too
            strong, weak = self.kept_local(strong), self.kept_local(weak)
        if strong_budget == 0:
            reason = f"{weak.id} answers; a 0% strong-call budget: no escalation"
            return Plan(self.with_fallbacks(weak, local_only=local_only), "cascade", reason)
        if strong.id == weak.id:  # asking the same model twice would only cost time
            stronger = "local model" if kept_local else "model configured"
            reason = f"{strong.id} answers; no stronger {stronger} to escalate to"
            return Plan(self.with_fallbacks(strong, local_only=local_only), "cascade", reason)
        reason = f"{weak.id} answers first; escalates to {strong.id} when unsure"
        return Plan(
            self.with_fallbacks(strong, local_only=local_only),
            "cascade",
            reason,
            cascade_from=weak,
            strong_budget=strong_budget,
        )

    def moved_local(self, plan: Plan) -> Plan:
        """`plan` (a router's or an override's) on local tiers, for a reason found after it
        was made (PII in a public collection's retrieved text): where `local_only` would have
        sent it, without asking the router again. A cascade whose strong model is kept local
        keeps escalating only to a stronger local model than its first."""
        first = plan.candidates[0]
        target = first if self.tiers.is_local(first) else self.kept_local(first)
        weak = plan.cascade_from
        stays = weak is not None and self.tiers.is_local(weak) and weak.id != target.id
        cascade_from = weak if stays else None
        reason = plan.reason
        if target is not first:
            kept = f"; kept local by policy, so {target.id} ({target.tier})"
            if cascade_from is not None:  # the cascade's reason named the remote model
                reason += f"{kept} is escalated to instead"
            elif weak is not None:
                reason += f"{kept} answers, with no escalation"
            else:
                reason += f"{kept} answers"
        return replace(
            plan,
            candidates=self.with_fallbacks(target, local_only=True),
            reason=reason,
            cascade_from=cascade_from,
            roomier=[m for m in plan.roomier if self.tiers.is_local(m)],
        )

    def for_tools(self, plan: Plan, *, local_only: str = "", strong_allowed: bool = True) -> Plan:
        """Only models that can call tools may answer a request that offers tools. A model or
        tier the client chose is not swapped (400); a router's choice moves to the nearest
        capable model, cheapest first from the chosen tier. `local_only`: why the request must
        stay on local tiers ("" when it need not). `strong_allowed`: False under a strong-call
        budget of none, which keeps a router's choice below the strong tier, tools or not (the
        cloud answered, and billed, every tool request at `max_strong_share: 0`)."""
        chosen = plan.asked_first
        below_strong = self._below_strong_tier(strong_allowed)
        # Under the cascade the small model is the choice and the strong models its
        # escalation, which a request that skips the cascade does not take: the nearest
        # capable model from the small one answers (the cloud answered before on-prem did).
        escalation = [] if plan.cascade_from is not None else plan.candidates
        capable = [m for m in [chosen, *escalation] if m.tools and below_strong(m)]
        # What the client chose is not swapped; but a policy that kept the request local has
        # already swapped it, and the nearest local model that can call tools answers.
        if plan.router in ("none", "override") and not capable and not local_only:
            raise InvalidRequest(
                self._cannot_call_tools(chosen, plan.router),
                param="tools",
                code="tools_not_supported",
            )
        if not capable:
            nearest = self._nearest_tool_model(
                chosen.tier, local_only=local_only, below_strong=below_strong
            )
            chain = self.with_fallbacks(nearest, local_only=bool(local_only))
            capable = [nearest, *(m for m in chain if m.tools and below_strong(m))]
        answering = capable[0]
        if plan.cascade_from is not None:
            plan.reason += f"; tools offered, so no cascade: {answering.id} answers"
        elif answering.id != chosen.id:
            plan.reason += f"; {chosen.id} cannot call tools, so {answering.id} answers"
        plan.candidates = [m for i, m in enumerate(capable) if m.id not in _ids(capable[:i])]
        plan.roomier = [m for m in plan.roomier if m.tools]
        plan.cascade_from = None
        return plan

    def _cannot_call_tools(self, chosen: ModelInfo, router: str) -> str:
        if not any(m.tools for m in self.models):
            return (
                f"The model `{chosen.id}` cannot call tools, and no configured model can (a"
                " local model answers them with `tools: true` in its config)"
            )
        if router == "override":
            return (
                f"The tier asked for ({chosen.tier}) is answered by `{chosen.id}`, which cannot"
                " call tools; ask for a tier whose model has `tools: true` in GET /v1/models,"
                " or let the router choose"
            )
        return (
            f"The model `{chosen.id}` cannot call tools; choose one with `tools: true` in"
            " GET /v1/models, or model `auto`"
        )

    def _below_strong_tier(self, strong_allowed: bool) -> Callable[[ModelInfo], bool]:
        """Whether a model may answer under the strong-call budget: any, unless it is none;
        then only models below the strong model's tier (when it has one of its own)."""
        strong = self.strong
        if strong_allowed or strong.id == self.weak.id:
            return lambda _: True
        ceiling = TIERS.index(strong.tier)
        return lambda model: TIERS.index(model.tier) < ceiling

    def _nearest_tool_model(
        self, tier: Tier, *, local_only: str, below_strong: Callable[[ModelInfo], bool]
    ) -> ModelInfo:
        allowed = [
            m
            for m in self.models
            if m.tools and below_strong(m) and (not local_only or self.tiers.is_local(m))
        ]
        start = TIERS.index(tier)
        by_distance = sorted(
            allowed, key=lambda m: (TIERS.index(m.tier) < start, abs(TIERS.index(m.tier) - start))
        )
        if not by_distance:
            if local_only:
                why = f"it must stay on local tiers ({local_only}), and no local model"
            elif any(m.tools for m in self.models):
                why = (
                    f"a 0% strong-call budget (max_strong_share) keeps it below the"
                    f" {self.strong.tier} tier, and no model there"
                )
            else:
                why = "no configured model"
            raise InvalidRequest(
                f"This request offers tools, but {why} can call tools",
                param="tools",
                code="tools_not_supported",
            )
        return by_distance[0]


def _ids(models: list[ModelInfo]) -> set[str]:
    return {model.id for model in models}
