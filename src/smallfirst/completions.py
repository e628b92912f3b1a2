"""The engine-neutral results that backends return and the server renders: a whole
`Completion` or streamed `Chunk`s, their usage and logprobs, and what a model can do
(`ModelInfo`)."""

from __future__ import annotations

from io import StringIO
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from smallfirst.types import FunctionCall, Tier, ToolCall

# Where OpenAI's usage details the counts that Usage keeps flat
DETAILED_COUNTS = (
    ("prompt_tokens_details", "cached_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
)


# A token count as the request log can keep it. Never negative: an upstream's -2 made a
# negative cost in the log, and /metrics refused it (a counter only goes up), which turned
# the answer into a 500. At most SQLite's largest integer: the log's writer thread died at a
# row holding 2**64, and no row was written after it.
TokenCount = Annotated[int, Field(ge=0, le=2**63 - 1)]


class Usage(BaseModel):
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0
    # prompt tokens that were not evaluated again (a local model's kept or restored context;
    # an upstream's prompt cache)
    cached_tokens: TokenCount = 0
    # completion tokens an upstream spent reasoning before its answer (o-series, gpt-5);
    # local models write none
    reasoning_tokens: TokenCount = 0

    @classmethod
    def estimated(cls, prompt: str, answer: str) -> Usage:
        """Tokens counted where no one counted them (an upstream that reports no usage, a
        stream cut before its usage came): 4 characters a token, rounded up, a prompt at
        least one."""
        return cls.estimated_from_lengths(len(prompt), len(answer))

    @classmethod
    def estimated_from_lengths(cls, prompt_chars: int, answer_chars: int) -> Usage:
        """`estimated`, of texts of these lengths (a stream's, counted as it passed)."""
        return cls(
            prompt_tokens=max(-(-prompt_chars // 4), 1), completion_tokens=-(-answer_chars // 4)
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
    answer = AnswerSoFar(with_logprobs=with_logprobs)
    for chunk in chunks:
        answer.add(chunk)
    return answer.completion()


class AnswerSoFar:
    """One answer's streamed pieces joined as they come, so that a long stream holds its
    text, not each chunk (~0.6 kB a chunk, ~11 kB with `top_logprobs: 20`); its logprobs
    only `with_logprobs`."""

    def __init__(self, *, with_logprobs: bool) -> None:
        self._text, self._refusal, self._reasoning = StringIO(), StringIO(), StringIO()
        self._logprobs: list[TokenLogprob] | None = [] if with_logprobs else None
        self._calls = _CallsSoFar()
        self._finish_reason: FinishReason | None = None  # the last told, as the usage
        self._usage: Usage | None = None
        self._system_fingerprint: str | None = None  # the first chunk's that has one
        self._service_tier: str | None = None

    def add(self, chunk: Chunk) -> None:
        self._text.write(chunk.text)
        self._refusal.write(chunk.refusal)
        self._reasoning.write(chunk.reasoning)
        if self._logprobs is not None:
            self._logprobs += chunk.logprobs or []
        for delta in chunk.tool_calls or []:
            self._calls.add(delta)
        self._finish_reason = chunk.finish_reason or self._finish_reason
        self._usage = self._usage if chunk.usage is None else chunk.usage
        self._system_fingerprint = self._system_fingerprint or chunk.system_fingerprint or None
        self._service_tier = self._service_tier or chunk.service_tier or None

    def completion(self) -> Completion:
        return Completion(
            text=self._text.getvalue(),
            finish_reason=self._finish_reason or "stop",
            usage=self._usage or Usage(),
            logprobs=self._logprobs,
            tool_calls=self._calls.joined(),
            refusal=self._refusal.getvalue() or None,
            reasoning=self._reasoning.getvalue() or None,
            system_fingerprint=self._system_fingerprint,
            service_tier=self._service_tier,
        )


def join_tool_call_deltas(deltas: list[ToolCallDelta]) -> list[ToolCall] | None:
    """Whole tool calls from their streamed pieces, in index order."""
    calls = _CallsSoFar()
    for delta in deltas:
        calls.add(delta)
    return calls.joined()


class _CallsSoFar:
    """Tool calls joined from their pieces as they come: each call's first id and name, its
    arguments' pieces written one after the other."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, StringIO] = {}

    def add(self, delta: ToolCallDelta) -> None:
        if delta.id:
            self._ids.setdefault(delta.index, delta.id)
        if delta.name:
            self._names.setdefault(delta.index, delta.name)
        self._arguments.setdefault(delta.index, StringIO()).write(delta.arguments)

    def joined(self) -> list[ToolCall] | None:
        """The calls in index order; None when no piece of any came."""
        if not self._arguments:
            return None
        return [
            ToolCall(
                id=self._ids.get(index, f"call_{index}"),
                function=FunctionCall(
                    name=self._names.get(index, ""), arguments=arguments.getvalue()
                ),
            )
            for index, arguments in sorted(self._arguments.items())
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
