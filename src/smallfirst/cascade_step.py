"""The cascade's judgement of a small model's draft: kept when it is sure enough, else
escalated (it still answers if no stronger model can; it is paid for already).

`service.py` asks the small model and hands its whole draft here; the thresholds and the
strong-call budget's calibration live in `routing/cascade.py` and `routing/traffic.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smallfirst.choices import completions_of
from smallfirst.completions import Chunk
from smallfirst.config import CascadeConfig
from smallfirst.errors import InvalidRequest
from smallfirst.routing.cascade import answer_logprobs, confidence, escalation, least_sure
from smallfirst.routing.planner import Plan
from smallfirst.routing.traffic import TrafficCalibration
from smallfirst.types import GenerateRequest


@dataclass(frozen=True)
class Draft:
    """The cascade's small answer: `kept` when it is sure enough; else `unsure`, which still
    answers if no stronger model can (it is paid for already). Neither: no draft."""

    kept: list[Chunk] | None = None
    unsure: list[Chunk] | None = None


def judge_draft(
    drafted: list[Chunk],
    request: GenerateRequest,
    plan: Plan,
    cascade: CascadeConfig,
    traffic: TrafficCalibration,
    *,
    capped: bool,
) -> Draft:
    """The draft kept when the small model is sure enough of it, else unsure; the plan's
    reason says why (and carries the score and threshold). `capped`: written within
    `routing.cascade.max_tokens`, not the client's limit."""
    drafts = completions_of(drafted, request.n, with_logprobs=True)
    if request.logprob_alternatives is None:  # asked for by us, not by the client
        drafted = [chunk.model_copy(update={"logprobs": None}) for chunk in drafted]
    if request.token_limit == 0:  # a prompt scored (`echo`), no answer to be unsure of
        return _kept(drafted, plan, "max_tokens 0 asks for no answer to judge")
    if capped and any(d.finish_reason == "length" for d in drafts):
        why = f"the draft reached routing.cascade.max_tokens ({cascade.max_tokens})"
        return _escalated(drafted, plan, why)
    if any(not d.text.strip() and not d.tool_calls for d in drafts):
        # A completion's end token has a logprob: an empty answer looked sure (-0.26)
        return _escalated(drafted, plan, "the draft is empty")
    sure = least_sure(confidence(answer_logprobs(d.logprobs, request)) for d in drafts)
    verdict = escalation(sure, cascade, traffic, plan.strong_budget)
    plan.score, plan.threshold = _finite(verdict.score), _finite(verdict.threshold)
    if verdict.escalate:
        return _escalated(drafted, plan, verdict.why)
    return _kept(drafted, plan, verdict.why)


class LogprobRefusals:
    """The small models whose upstream refused the token logprobs their drafts are judged by,
    and why. Asked again, a model refuses again (OpenAI's reasoning models take no
    `logprobs`), so each later draft would cost a 400 round trip: it escalates at once, for
    the gateway's life (until the server restarts). One event loop reads and writes it."""

    def __init__(self, shown_chars: int) -> None:
        self._shown_chars = shown_chars  # of the upstream's message, in the reason
        self._why: dict[str, str] = {}

    def known(self, model_id: str, request: GenerateRequest) -> str | None:
        """Why `model_id`'s draft escalates without asking it: it refused the logprobs before.
        Not when the client asks for logprobs: the model's refusal is then the client's 400."""
        return self._why.get(model_id) if request.logprob_alternatives is None else None

    def refused(self, model_id: str, error: InvalidRequest, request: GenerateRequest) -> str | None:
        """Why the draft escalates, remembered, if `error` is `model_id` refusing the token
        logprobs the cascade asked it for, the client having asked for none (OpenAI's
        reasoning models: "Unsupported parameter: 'logprobs' is not supported with this
        model."); its draft cannot be judged, where it was a 400 about a field its client
        never sent. None for any other error."""
        named = error.param in ("logprobs", "top_logprobs") or "logprobs" in error.message.lower()
        if not named or request.logprob_alternatives is not None:
            return None
        excerpt = error.shareable_message[: self._shown_chars]
        why = f"{model_id} refused the token logprobs its draft is judged by ({excerpt})"
        self._why[model_id] = why
        return why


def _kept(drafted: list[Chunk], plan: Plan, why: str) -> Draft:
    plan.reason += f"; kept: {why}"
    return Draft(kept=drafted)


def _escalated(drafted: list[Chunk], plan: Plan, why: str) -> Draft:
    plan.reason += f"; escalated: {why}"
    return Draft(unsure=drafted)


def _finite(value: float) -> float | None:
    """A score or threshold as answers carry it: none rather than infinity (no JSON)."""
    return value if math.isfinite(value) else None
