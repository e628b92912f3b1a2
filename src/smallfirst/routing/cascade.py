"""Cascade confidence: is the small model sure enough of its own answer?

Signals are the answer's token logprobs under the small model itself: the mean (how surprised
the model was on average) and optionally the minimum (one very unsure token, e.g. a guessed
number). Thresholds live in config (`routing.cascade`); `calibrate_cascade` derives the mean
threshold from rows labelled with your own pair of models (`router label` records the weak
answer's confidence), for a target share of escalations or a target quality.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smallfirst.completions import TokenLogprob
from smallfirst.config import CascadeConfig
from smallfirst.errors import ConfigError
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest

if TYPE_CHECKING:
    from smallfirst.routing.traffic import TrafficCalibration


CASCADE_HAS_NO_QUALITY_TARGET = (
    "the cascade has no quality table to turn min_quality into a threshold: calibrate"
    " routing.cascade.min_mean_logprob to a quality target with `smallfirst router"
    " calibrate-cascade --min-quality`, or give a strong-call budget (max_strong_share)"
)


@dataclass(frozen=True)
class Confidence:
    mean_logprob: float
    min_logprob: float
    tokens: int

    def confident(self, config: CascadeConfig) -> bool:
        if self.tokens == 0:
            return False
        if self.mean_logprob < config.min_mean_logprob:
            return False
        return config.min_token_logprob is None or self.min_logprob >= config.min_token_logprob

    def describe(self) -> str:
        # it said "mean logprob -inf, min -inf, 0 tokens" (QA); an empty draft escalates
        # before it is judged (`cascade_step.judge_draft`)
        if self.tokens == 0:
            return "no token logprobs to judge (the model sends none)"
        return (
            f"mean logprob {self.mean_logprob:.3f}, min {self.min_logprob:.3f}, "
            f"{self.tokens} tokens"
        )


@dataclass(frozen=True)
class Escalation:
    """Whether a draft goes up, and why: `score` is how unsure the small model was (minus
    its mean logprob; higher = needs the strong model), against `threshold`."""

    escalate: bool
    score: float
    threshold: float
    why: str


def escalation(
    sure: Confidence,
    config: CascadeConfig,
    traffic: TrafficCalibration,
    strong_budget: float | None,
) -> Escalation:
    """By the configured thresholds; or, under a strong-call budget, for the unsurest
    `strong_budget` share of recent drafts (the configured threshold until enough are seen),
    as the other routers without a calibration table meet a budget (`traffic.py`)."""
    score = -sure.mean_logprob
    if strong_budget is None:
        bar = f"threshold: mean logprob {config.min_mean_logprob:.3f}"
        if config.min_token_logprob is not None:
            bar += f", min {config.min_token_logprob:.3f}"
        why = f"{sure.describe()} ({bar})"
        return Escalation(not sure.confident(config), score, -config.min_mean_logprob, why)
    # The configured bar keeps a draft at it (`min_mean_logprob` is the least mean kept),
    # while a score at a cut goes up: the warm-up's cut is the next score above the bar (a
    # draft at it escalated under a budget and was kept without one).
    configured = math.nextafter(-config.min_mean_logprob, math.inf)
    cut = traffic.cut_for(score, strong_budget, configured)
    threshold = cut.threshold
    # The request log holds the threshold only in the reason, and it was missing (QA).
    bar = f"threshold: mean logprob {-threshold:.3f}" if math.isfinite(threshold) else "none now"
    why = f"{sure.describe()}, against a {strong_budget:.0%} strong-call budget ({bar})"
    return Escalation(cut.goes_strong(score), score, threshold, why)


def draft_request(request: GenerateRequest, max_tokens: int | None) -> GenerateRequest:
    """What the small model is asked for its draft: at most `max_tokens` if given, and with
    its token logprobs, which the cascade reads whether or not the client asked for them."""
    update: dict[str, Any] = {}
    if max_tokens is not None:
        update["max_tokens"] = max_tokens
        if isinstance(request, ChatRequest):
            update["max_completion_tokens"] = None
    if request.logprob_alternatives is None:
        if isinstance(request, ChatRequest):
            update |= {"logprobs": True, "top_logprobs": 0}
        else:
            update["logprobs"] = 0
    return request.model_copy(update=update) if update else request


def least_sure(confidences: Iterable[Confidence]) -> Confidence:
    """Of `n` drafts, the one that decides: one with no tokens at all, else the lowest mean
    logprob."""
    return min(confidences, key=lambda sure: (sure.tokens > 0, sure.mean_logprob))


def answer_logprobs(
    logprobs: list[TokenLogprob] | None, request: GenerateRequest
) -> list[TokenLogprob] | None:
    """The logprobs of the answer's own tokens. An echoed prompt (`echo`) comes first: its
    tokens say how surprising the prompt was, not how sure the model is of its answer (QA:
    they pulled a sure answer's mean below the threshold, and a prompt scored with
    `max_tokens: 0` was judged, and escalated, on the prompt alone)."""
    if not logprobs or not (isinstance(request, TextRequest) and request.echo):
        return logprobs
    echoed, spelled, prompt = 0, 0, len(request.prompt_text.encode())
    while echoed < len(logprobs) and spelled < prompt:
        spelled += len(logprobs[echoed].token_bytes)
        echoed += 1
    return logprobs[echoed:]


def confidence(logprobs: list[TokenLogprob] | None) -> Confidence:
    values = [item.logprob for item in logprobs or [] if item.logprob is not None]
    if not values:
        return Confidence(mean_logprob=float("-inf"), min_logprob=float("-inf"), tokens=0)
    return Confidence(sum(values) / len(values), min(values), len(values))


@dataclass(frozen=True)
class CascadeCalibration:
    """A `min_mean_logprob` for the cascade and what it did on the labelled rows."""

    min_mean_logprob: float
    escalated_share: float
    quality: float
    pgr: float  # nan when the weak and strong mean scores are equal (no gap)
    rows: int
    signal_apgr: float  # how well the weak model's confidence ranks rows that need the strong one


def calibrate_cascade(
    rows: Sequence[dict[str, Any]],
    *,
    max_strong_share: float | None = None,
    min_quality: float | None = None,
) -> CascadeCalibration:
    """Pick the mean-logprob threshold from labelled rows (`weak_confidence`, weak and strong
    scores). Same rule as the learned router's calibration: a budget cap on escalations,
    a PGR target, or both (the budget wins). Measured on the given rows: hold some aside."""
    from smallfirst.routing.calibrate import fit_calibration
    from smallfirst.routing.eval import evaluate_scores

    usable = [r for r in rows if _section(r, "weak_confidence").get("tokens") and _scored(r)]
    if not usable:
        raise ConfigError(
            "no rows with `weak_confidence` and both scores; label them with `router label`"
        )
    # Score = how unsure the weak model was; escalating rows with score >= t is the cascade.
    scores = [-float(r["weak_confidence"]["mean_logprob"]) for r in usable]
    weak = [float(r["weak"]["score"]) for r in usable]
    strong = [float(r["strong"]["score"]) for r in usable]
    table = fit_calibration(scores, weak, strong)
    threshold = table.threshold(max_strong_share=max_strong_share, min_quality=min_quality)
    escalated = [s >= threshold for s in scores]
    quality = sum(st if e else w for e, w, st in zip(escalated, weak, strong, strict=True))
    gap = table.strong_mean - table.weak_mean
    mean_quality = quality / len(usable)
    metrics, _ = evaluate_scores(scores, weak, strong)
    return CascadeCalibration(
        min_mean_logprob=_mean_threshold(scores, threshold),
        escalated_share=sum(escalated) / len(usable),
        quality=mean_quality,
        pgr=(mean_quality - table.weak_mean) / gap if gap else math.nan,
        rows=len(usable),
        signal_apgr=metrics.apgr,
    )


def _scored(row: dict[str, Any]) -> bool:
    """Both sides have a score: a judge that gave no rating leaves it null."""
    return all(_section(row, side).get("score") is not None for side in ("weak", "strong"))


def _section(row: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`row[name]` when it is an object, else empty: a hand-edited row's `"weak": 1` or
    `"weak_confidence": "high"` stopped the command with a traceback."""
    value = row.get(name)
    return value if isinstance(value, Mapping) else {}


def _mean_threshold(scores: Sequence[float], threshold: float) -> float:
    """The cascade keeps an answer when its mean logprob >= the threshold: put it halfway
    between the least sure kept row and the surest escalated one (a margin both ways)."""
    kept = [-s for s in scores if s < threshold]
    escalated = [-s for s in scores if s >= threshold]
    if not escalated:
        return -math.inf
    if not kept:
        return 0.0
    return (min(kept) + max(escalated)) / 2
