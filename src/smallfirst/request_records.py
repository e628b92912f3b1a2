"""The request log's rows: what the gateway writes for each request it answered, refused
or failed (`logs.RequestRecord`); prompt and answer texts only with `log_prompts`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from smallfirst.answers import RequestContext, RouteInfo, new_request_id
from smallfirst.completions import Chunk, Completion, ModelInfo, Usage
from smallfirst.config import BaselineConfig
from smallfirst.errors import CLIENT_CLOSED_REQUEST, BudgetSpent, PolicyBlocked, SmallfirstError
from smallfirst.logs import RequestRecord, request_cost
from smallfirst.logs.store import EMBEDDINGS_TIER
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest, ToolCall

# An answer's length when the client sets no `max_tokens`, for the budget's estimate of a
# call under way: a long chat answer.
ASSUMED_ANSWER_TOKENS = 1000

UNKNOWN_MODEL = "unknown"  # a refused request's, when its body named none


@dataclass(frozen=True)
class Ending:
    """How a request ended: its tokens, status, error, and the answers' text."""

    usage: Usage
    status: int = 200
    error: SmallfirstError | None = None
    text: str | None = None
    ttft: float | None = None  # perf_counter() at the first streamed chunk
    read: bool = True  # False: its client left while it waited for its model's slot


def answered_record(
    request: GenerateRequest,
    ctx: RequestContext,
    route: RouteInfo | None,
    ended: Ending,
    baseline: BaselineConfig,
    *,
    keep_text: bool,
) -> RequestRecord:
    """The row of a request that was read: answered, failed, or left by its client (499);
    with its prompt and answer texts when `keep_text` (`log_prompts`)."""
    model = route.model if route else None
    usage = ended.usage
    # a 499's model answered until its client left; a stream that failed, until it failed
    answered = ended.status < 400 or ended.status == CLIENT_CLOSED_REQUEST or bool(ended.ttft)
    # left while it waited for a slot: no tier had it, as a 499 before routing (`ANSWERED_SQL`)
    reader = model if ended.read else None
    return RequestRecord(
        id=ctx.request_id,
        created_at=ctx.created_at,
        endpoint=ctx.endpoint,
        model_requested=ctx.requested_model or request.model,
        model_answered=reader.id if reader and answered else None,
        tier=reader.tier if reader else None,
        status=ended.status,
        error_code=ended.error.code if ended.error else None,
        stream=request.stream,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=(time.perf_counter() - ctx.started) * 1000,
        ttft_ms=(ended.ttft - ctx.started) * 1000 if ended.ttft is not None else None,
        cost_usd=ctx.spent_usd,
        baseline_cost_usd=request_cost(baseline, usage),
        api_key_id=ctx.api_key_id,
        route_reason=route.reason if route else _why_refused(ended.error),
        router=route.router if route else None,
        route_score=route.score if route else None,
        escalations=",".join(route.escalations) or None if route else None,
        pii_entities=ctx.inspection.audit_json() if ctx.inspection else None,
        pii_action=ctx.inspection.action_for(
            model.id if model else None, refused=isinstance(ended.error, PolicyBlocked)
        )
        if ctx.inspection
        else None,
        prompt=prompt_text(request) if keep_text else None,
        response=ended.text if keep_text else None,
    )


def _why_refused(error: SmallfirstError | None) -> str | None:
    """Which daily budget a request refused before routing had spent, when that is why (its
    row said only insufficient_quota: the global budget or the key's alike)."""
    return error.spent or None if isinstance(error, BudgetSpent) else None


def estimated_usage(request: GenerateRequest, answer_text: str) -> Usage:
    """Tokens of a stream cut before its usage came (the client left, the upstream broke):
    the upstream has read the prompt and written the answer so far, and bills them. Counted
    as for an upstream that reports no usage (`Usage.estimated`)."""
    return Usage.estimated(prompt_text(request), answer_text)


def estimated_cost(model: ModelInfo, request: GenerateRequest) -> float:
    """What a call may cost before it is made, for the daily budget (`assumed_usage`)."""
    return request_cost(model, assumed_usage(request, answered=True))


def assumed_usage(request: GenerateRequest, *, answered: bool) -> Usage:
    """A remote call's tokens when none were reported: the prompt at 4 characters a token,
    and (`answered`) each answer as long as `max_tokens` allows (ASSUMED_ANSWER_TOKENS when
    the client set no limit)."""
    answer_tokens = (request.token_limit or ASSUMED_ANSWER_TOKENS) * request.n if answered else 0
    prompt_tokens = Usage.estimated(prompt_text(request), "").prompt_tokens
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=answer_tokens)


def rejection_record(
    endpoint: str, error: SmallfirstError, api_key_id: str | None, asked: str = UNKNOWN_MODEL
) -> RequestRecord:
    """The row of a request refused before it could be read: no model answered; `asked`, the
    one its body named."""
    return RequestRecord(
        id=new_request_id(),
        created_at=time.time(),
        endpoint=endpoint,
        model_requested=asked,
        status=error.status,
        error_code=error.code,
        api_key_id=api_key_id,
    )


def embeddings_record(
    model: str,
    api_key_id: str | None,
    started: float,
    tokens: int,
    error: SmallfirstError | None = None,
) -> RequestRecord:
    """An embeddings request's row; a failed one keeps its model and how long it took (it
    was logged as model "unknown" in 0 ms, even a 400 that took seconds)."""
    return RequestRecord(
        id=new_request_id(),
        created_at=time.time(),
        endpoint="embeddings",
        model_requested=model,
        model_answered=model if error is None else None,
        tier=EMBEDDINGS_TIER,
        status=200 if error is None else error.status,
        error_code=None if error is None else error.code,
        prompt_tokens=tokens,
        latency_ms=(time.perf_counter() - started) * 1000,
        api_key_id=api_key_id,
    )


def prompt_text(request: GenerateRequest) -> str:
    """What the model was given, as the log keeps it (`log_prompts`); tool definitions last."""
    if isinstance(request, TextRequest) and request.prompt_needs_reading:
        return f"[{len(request.prompt_tokens or [])} token ids]"
    if not isinstance(request, ChatRequest):
        suffix = "" if request.suffix is None else f"\n[suffix]\n{request.suffix}"
        return request.prompt_text + suffix
    lines = [f"{m.role}: {with_calls(m.text, m.tool_calls)}" for m in request.messages]
    if request.tools:
        functions = [tool.function.model_dump(exclude_none=True) for tool in request.tools]
        lines.append(f"tools: {json.dumps(functions, ensure_ascii=False)}")
    return "\n".join(lines)


def answers_text(choices: Sequence[Completion]) -> str:
    """The answers as the log keeps them (`log_prompts`): numbered when there are several."""
    texts = [with_calls(choice.text, choice.tool_calls) for choice in choices]
    if len(texts) == 1:
        return texts[0]
    return "\n".join(f"[{index}] {text}" for index, text in enumerate(texts))


def with_calls(text: str, calls: Sequence[ToolCall] | None) -> str:
    """A message's or answer's text and its tool calls, as the log shows them (an answer that
    is only a call read " [call ...]", a blank first)."""
    shown = [f"[call {c.function.name}({c.function.arguments})]" for c in calls or []]
    return " ".join([text, *shown] if text else shown)


def call_cost(model: ModelInfo, result: object) -> float:
    """Cost of a finished call; streamed answers are costed when the stream ends."""
    if isinstance(result, Completion):
        return request_cost(model, result.usage)
    if isinstance(result, list):
        usage = next((c.usage for c in reversed(result) if isinstance(c, Chunk) and c.usage), None)
        return request_cost(model, usage) if usage else 0.0
    return 0.0
