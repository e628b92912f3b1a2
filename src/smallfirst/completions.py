"""The engine-neutral results that backends return and the server renders: a whole
`Completion` or streamed `Chunk`s, their usage and logprobs, and what a model can do
(`ModelInfo`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from smallfirst.types import FunctionCall, Tier, ToolCall

# Where OpenAI's usage details the counts that Usage keeps flat
DETAILED_COUNTS = (
    ("prompt_tokens_details", "cached_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # prompt tokens that were not evaluated again (a local model's kept or restored context;
    # an upstream's prompt cache)
    cached_tokens: int = 0
    # completion tokens an upstream spent reasoning before its answer (o-series, gpt-5);
    # local models write none
    reasoning_tokens: int = 0

    @classmethod
    def estimated(cls, prompt: str, answer: str) -> Usage:
        """Tokens counted where no one counted them (an upstream that reports no usage, a
        stream cut before its usage came): 4 characters a token, rounded up, a prompt at
        least one."""
        return cls(
            prompt_tokens=max(-(-len(prompt) // 4), 1), completion_tokens=-(-len(answer) // 4)
        )

    @model_validator(mode="before")
    @classmethod
    def _upstream_details(cls, data: Any) -> Any:
        """Reads OpenAI's `prompt_tokens_details.cached_tokens` and
        `completion_tokens_details.reasoning_tokens` from an upstream's usage."""
        if not isinstance(data, dict):
            return data
        for details, count in DETAILED_COUNTS:
            detailed = data.get(details)
            value = detailed.get(count) if isinstance(detailed, dict) else None
            if isinstance(value, int):
                data = {**data, count: value}
        return data

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


class SpelledToken(BaseModel):
    token: str
    # The token's own bytes, when its text cannot show them: a piece of a character (an
    # emoji is several tokens) reads as U+FFFD. OpenAI's `bytes` rebuild the characters.
    utf8: list[int] | None = None

    @property
    def token_bytes(self) -> list[int]:
        return self.utf8 if self.utf8 is not None else list(self.token.encode("utf-8"))


class TopLogprob(SpelledToken):
    logprob: float


class TokenLogprob(SpelledToken):
    logprob: float | None  # None for an echoed prompt's first token, which nothing predicts
    top: list[TopLogprob] = Field(default_factory=list)
    # Where an upstream's legacy completion logprobs say the token begins, counted from where
    # it counts: that shape has no bytes, so a piece of a character cannot tell it itself.
    text_offset: int | None = None


# content_filter: an upstream's moderation cut the answer (local models never end so)
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


def finish_reason_of(upstream: object) -> FinishReason:
    """An upstream's finish reason in our terms (the others, "eos" and the like, end as stop)."""
    return upstream if upstream in ("length", "tool_calls", "content_filter") else "stop"


class Completion(BaseModel):
    """One finished generation, whatever engine produced it."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCall] | None = None
    # An upstream's refusal (OpenAI's `message.refusal`) and its reasoning before the answer
    # (DeepSeek's and vLLM's `reasoning_content`); local models write neither.
    refusal: str | None = None
    reasoning: str | None = None
    # An upstream's, passed on: its build, and how it processed the request (OpenAI's
    # `service_tier` says "flex", "priority"... when asked); None from local models.
    system_fingerprint: str | None = None
    service_tier: str | None = None


class ToolCallDelta(BaseModel):
    """A piece of a streamed tool call: the first piece of each call has its id and name,
    later pieces continue its arguments. `index` tells calls apart."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Chunk(BaseModel):
    """One streamed piece of the answer `index` (0 unless the request asked for `n` > 1).
    Each answer's last chunk carries its `finish_reason`; the stream's last chunk carries the
    `usage` of all of them: the last finish chunk, or a chunk of its own after it (an
    upstream's usage, which comes after its finishes)."""

    index: int = 0
    text: str = ""
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str = ""  # pieces of Completion's refusal and reasoning
    reasoning: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    system_fingerprint: str | None = None  # as Completion's
    service_tier: str | None = None


def completion_from_chunks(chunks: list[Chunk], *, with_logprobs: bool) -> Completion:
    """Join streamed pieces into one answer (its finish reason and usage are the last told)."""
    logprobs = [lp for chunk in chunks for lp in chunk.logprobs or []]
    return Completion(
        text="".join(chunk.text for chunk in chunks),
        finish_reason=next((c.finish_reason for c in reversed(chunks) if c.finish_reason), "stop"),
        usage=next((c.usage for c in reversed(chunks) if c.usage is not None), Usage()),
        logprobs=logprobs if with_logprobs else None,
        tool_calls=join_tool_call_deltas([d for chunk in chunks for d in chunk.tool_calls or []]),
        refusal="".join(chunk.refusal for chunk in chunks) or None,
        reasoning="".join(chunk.reasoning for chunk in chunks) or None,
        system_fingerprint=next(
            (c.system_fingerprint for c in chunks if c.system_fingerprint), None
        ),
        service_tier=next((c.service_tier for c in chunks if c.service_tier), None),
    )


def join_tool_call_deltas(deltas: list[ToolCallDelta]) -> list[ToolCall] | None:
    """Whole tool calls from their streamed pieces, in index order."""
    if not deltas:
        return None
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for delta in deltas:
        if delta.id:
            ids.setdefault(delta.index, delta.id)
        if delta.name:
            names.setdefault(delta.index, delta.name)
        arguments.setdefault(delta.index, []).append(delta.arguments)
    return [
        ToolCall(
            id=ids.get(index, f"call_{index}"),
            function=FunctionCall(name=names.get(index, ""), arguments="".join(parts)),
        )
        for index, parts in sorted(arguments.items())
    ]


class ModelInfo(BaseModel):
    id: str
    tier: Tier
    backend: str
    context_length: int
    input_cost_per_1m: float = 0.0
    cached_input_cost_per_1m: float | None = None
    output_cost_per_1m: float = 0.0
    loaded: bool = False
    tools: bool = False  # can answer with tool calls
    # Answered by an upstream over HTTP, whatever its tier: its tokens are counted (and a call
    # it received is billed) there, so a call that ends early is billed by estimate here.
    upstream: bool = False
