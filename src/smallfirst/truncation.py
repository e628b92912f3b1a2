"""The Responses API's `truncation: "auto"`: a conversation too long for the model that is to
answer it loses its oldest turns, as few as let it fit, rather than being refused.

A last resort, reached from `service.py` only where the client would otherwise get the 400
`context_length_exceeded` (no model the request may go to takes it whole). Never dropped:
system and developer messages (`instructions` among them), the last user message and what
follows it (the turn being answered, its calls and their outputs). The rest goes a turn at a
time (a user message and the answers, calls and call outputs after it), so a call never loses
its output. A model that runs here counts the prompt with its own tokenizer and chat template
(the check it makes before answering), so the fewest turns are dropped; a remote model's own
400 is the only count, so it is asked again with half of the turns that may go each time, a few
times at most, the last time with all of them gone. When even that does not fit, the 400 is
the shortest prompt's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from smallfirst.errors import ContextLengthExceeded
from smallfirst.privacy_step import Inspection, scanned_count
from smallfirst.types import ChatMessage, ChatRequest, GenerateRequest

if TYPE_CHECKING:
    from smallfirst.completions import ModelInfo
    from smallfirst.privacy.detect import Finding
    from smallfirst.routing.planner import Plan
    from smallfirst.service import Gateway

T = TypeVar("T")
REMOTE_TRIES = 4  # calls to a remote model, the one with the fewest turns last
KEPT_ROLES = ("system", "developer")


@dataclass(frozen=True)
class Shortened:
    """The conversation without its oldest `turns` turns, and the guard's findings for it."""

    request: ChatRequest
    findings: Inspection | None
    turns: int
    items: int  # dropped, in the Responses API's count (a function call is an item)


class Conversation:
    """A conversation and the turns it may lose, with the guard's findings for it."""

    def __init__(self, request: ChatRequest, inspection: Inspection | None) -> None:
        self.request = request
        self.inspection = inspection
        self.turns = droppable_turns(request.messages)
        # how many of the guard's texts each message is: read once, not at every try
        self._scanned_counts = [scanned_count(message) for message in request.messages]

    def without(self, turns: int) -> Shortened:
        """Without its oldest `turns` turns."""
        dropped = {i for turn in self.turns[:turns] for i in turn}
        messages = self.request.messages
        kept = [m for i, m in enumerate(messages) if i not in dropped]
        findings = self.inspection
        if findings is not None:  # the findings of the whole, as the guard made them
            found = _kept_findings(findings, self._scanned_counts, dropped)
            findings = replace(findings, findings=found)
        items = sum(_items(messages[i]) for i in dropped)
        return Shortened(self.request.model_copy(update={"messages": kept}), findings, turns, items)


def droppable_turns(messages: list[ChatMessage]) -> list[list[int]]:
    """The indexes of the messages that may be dropped, by turn, the oldest first."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    turns: list[list[int]] = []
    for index, message in enumerate(messages[: users[-1]] if users else []):
        if message.role in KEPT_ROLES:
            continue
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(index)
    return turns


async def answer_truncated(
    gateway: Gateway,
    model: ModelInfo,
    plan: Plan,
    inspection: Inspection | None,
    request: GenerateRequest,
    too_long: ContextLengthExceeded,
    answer: Callable[..., Awaitable[T]],
) -> T:
    """`model`'s answer to the conversation without the fewest oldest turns that let it fit
    (the plan's reason says how many items went). `inspection`: the guard's findings for
    `request`. `answer(request, findings=...)`: the gateway's call to `model`, given the
    guard's findings for the shortened request."""
    if not isinstance(request, ChatRequest):
        raise too_long
    conversation = Conversation(request, inspection)
    if not conversation.turns:
        raise too_long

    async def answered(shortened: Shortened) -> T:
        return await answer(shortened.request, findings=shortened.findings)

    async def fits(shortened: Shortened) -> bool:  # checked as the call would send it
        sent, _ = gateway.privacy.request_for(shortened.request, model, shortened.findings)
        return await gateway.backends[model.id].check_context(sent)

    # the shortest first: if it does not fit, its 400 says how long the shortest prompt is
    if await fits(conversation.without(len(conversation.turns))):
        result, shortened = await _fewest_dropped(conversation, answered, fits)
    else:  # a model that only its answer tells
        result, shortened = await _remote_tries(conversation, answered)
    plan.reason += (
        f"; {too_long.beyond(model.id)} whole, so truncation 'auto' dropped its"
        f" {shortened.items} oldest input items ({shortened.turns} turns)"
    )
    return result


async def _fewest_dropped(
    conversation: Conversation,
    answered: Callable[[Shortened], Awaitable[T]],
    fits: Callable[[Shortened], Awaitable[bool]],
) -> tuple[T, Shortened]:
    """A binary search for the fewest turns to drop (dropping more never lengthens the
    prompt), where dropping them all is enough."""
    fewest, enough = 1, len(conversation.turns)
    while fewest < enough:
        middle = (fewest + enough) // 2
        try:
            await fits(conversation.without(middle))
        except ContextLengthExceeded:
            fewest = middle + 1
        else:
            enough = middle
    shortened = conversation.without(enough)
    return await answered(shortened), shortened


async def _remote_tries(
    conversation: Conversation, answer: Callable[[Shortened], Awaitable[T]]
) -> tuple[T, Shortened]:
    *tries, last = remote_drops(len(conversation.turns))
    for turns in tries:
        shortened = conversation.without(turns)
        try:
            return await answer(shortened), shortened
        except ContextLengthExceeded:
            continue
    shortened = conversation.without(last)
    return await answer(shortened), shortened


def remote_drops(most: int) -> list[int]:
    """How many turns each call to a remote model drops: half of those left each time, and
    all of them the last time."""
    kept, drops = most, list[int]()
    while kept and len(drops) < REMOTE_TRIES - 1:
        kept //= 2
        drops.append(most - kept)
    if drops[-1:] != [most]:
        drops.append(most)
    return drops


def _items(message: ChatMessage) -> int:
    """The Responses input items a chat message was made of (an assistant's function calls
    are items of their own)."""
    calls = len(message.tool_calls or [])
    said = message.content is not None or message.refusal is not None
    return calls + (1 if said or not calls else 0)


def _kept_findings(
    inspection: Inspection, scanned_counts: list[int], dropped: set[int]
) -> list[list[Finding]]:
    """The findings of the messages kept (`scanned_counts`: how many texts the guard read of
    each message), and of the texts after the messages: metadata, tools, stop sequences."""
    kept: list[list[Finding]] = []
    start = 0
    for index, count in enumerate(scanned_counts):
        end = start + count
        if index not in dropped:
            kept.extend(inspection.findings[start:end])
        start = end
    return [*kept, *inspection.findings[start:]]
