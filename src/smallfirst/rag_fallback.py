"""A grounded request falling back to a model with a smaller context than its sources were
sized for (the cloud failed, on-prem's or edge's context is a quarter of it).

The sources are sized for the model that reads the prompt first (`Gateway._grounded_for`).
Sent as they were to a fallback with a smaller context, they did not fit it: a local model
refused the prompt, so the client got the failed tier's error, and a remote one answered with
its own 400 or cut the prompt. Such a fallback now gets the same retrieved sources (not
searched again) sized for its context, the best first, and is skipped when not even one fits
beside the conversation: an answer without its sources would look grounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smallfirst.errors import ContextLengthExceeded

if TYPE_CHECKING:
    from smallfirst.answers import RequestContext
    from smallfirst.completions import ModelInfo
    from smallfirst.privacy_step import Inspection
    from smallfirst.rag_step import Grounded
    from smallfirst.routing.planner import Plan
    from smallfirst.service import Gateway


@dataclass(frozen=True)
class Fitted:
    """A grounded request as one model can take it, and the guard's findings for it (None:
    the request's own, `ctx.inspection`)."""

    grounded: Grounded
    findings: Inspection | None = None


async def sources_fitted(
    gateway: Gateway, grounded: Grounded, model: ModelInfo, plan: Plan, ctx: RequestContext
) -> Fitted | None:
    """`grounded` as `model` can take it: as it is unless `model`'s context is smaller than
    that of the model its sources were sized for, else with the sources that fit `model`
    (the plan's reason says how many); None, and the reason says why, when not one does."""
    if model.context_length >= grounded.sized_for.context_length:
        return Fitted(grounded)
    context = f"context of {model.context_length} tokens"
    try:
        async with gateway.backends[model.id].token_counter() as count_tokens:
            again = await gateway.rag.sized_again(grounded, model, count_tokens)
    except ContextLengthExceeded:
        plan.reason += (
            f"; {model.id} skipped: its {context} holds no retrieved source beside the conversation"
        )
        return None
    plan.reason += (
        f"; {model.id}'s {context} holds {len(again.citations)} of the"
        f" {len(grounded.citations)} sources"
    )
    findings = ctx.inspection
    private = gateway.settings.rag.is_private(grounded.retrieved.collection)
    if findings is None or private:  # a private collection's text is not scanned
        return Fitted(again)
    return Fitted(again, await gateway.privacy.inspected_again(again.request, findings))
