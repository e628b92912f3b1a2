"""Pydantic models of what clients ask: OpenAI-shaped requests, validated at the edge.
What models answer (`Completion`, `Chunk`) is in `smallfirst.completions`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from smallfirst.api_model import ApiModel, FieldError
from smallfirst.request_options import (
    AllowedTools,
    AllowedToolsChoice,
    NamedToolChoice,
    ResponseFormat,
    StreamOptions,
    Tool,
)

Tier = Literal["edge", "onprem", "cloud"]
TIERS: tuple[Tier, ...] = ("edge", "onprem", "cloud")


class PromptCacheBreakpoint(ApiModel):
    mode: Literal["explicit"]
    ttl: Literal["30m", "12h"] | None = None


class TextPart(ApiModel):
    type: Literal["text"]
    text: str
    # OpenAI's prompt-cache hints (this one, and `prompt_cache_options` / `_retention` below)
    # go on to remote tiers; local models keep prompts by themselves, whatever the hint.
    prompt_cache_breakpoint: PromptCacheBreakpoint | None = None


class PromptCacheOptions(ApiModel):
    mode: Literal["implicit", "explicit"] | None = None
    ttl: Literal["30m"] | None = None


class FunctionCall(ApiModel):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ToolCall(ApiModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# Bounds on a body's lists, checked before their items: a body of a million bad items was a
# million errors to build, seconds per megabyte with every other request waiting.
MAX_MESSAGES = 100_000
MAX_CONTENT_PARTS = 10_000
MAX_TOOLS = 128  # OpenAI's
ContentParts = Annotated[list[TextPart], Field(max_length=MAX_CONTENT_PARTS)]
# Between a message's text parts where they are read as one text. Glued, the end of one part
# ran into the next ("When is the kettle" + "descaled?" searched for "kettledescaled"); a line
# break is what vLLM and llama.cpp's server put between parts for a template that reads text.
PART_SEPARATOR = "\n"
# OpenAI's bounds on `metadata` (an upstream refuses more, so a local answer would too)
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


def _check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ValueError(
            f"too many properties: at most {MAX_METADATA_PAIRS} key-value pairs, got"
            f" {len(metadata)}"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"a key of {len(key)} characters; keys have at most {MAX_METADATA_KEY}"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise FieldError(
                key,
                f"a value of {len(value)} characters; values have at most {MAX_METADATA_VALUE}",
            )
    return metadata


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]


class ChatMessage(ApiModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | ContentParts | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool's result answers this call
    # Echoed back by clients that append our answer message to the conversation as it came.
    refusal: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _echoed_fields(cls, data: Any) -> Any:
        """Fields an OpenAI answer message carries, accepted empty (a conversation copied from
        OpenAI has them); with content they ask for what no model here does."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("function_call", "audio", "annotations"):
            if data.get(key):
                hint = " (use tool_calls)" if key == "function_call" else ""
                raise ValueError(f"a message with {key} is not supported{hint}")
            data.pop(key, None)
        parts = data.get("content")
        if isinstance(parts, list):
            if data.get("role") == "assistant":
                data = _refusal_parts_as_refusal(data, parts)
                parts = data["content"]
            _check_part_kinds(parts)
        return data

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if isinstance(self.content, list) and any(p is _REFUSAL_PLACE for p in self.content):
            self.content = [part for part in self.content if part is not _REFUSAL_PLACE] or None
        if self.content is None and self.role != "assistant":  # whose turn may be calls only
            raise FieldError("content", f"a message with role '{self.role}' needs content")
        if self.content == []:
            raise FieldError("content", "an empty array; a message needs at least one part")
        if self.role == "tool" and not self.tool_call_id:
            raise FieldError("tool_call_id", "a message with role 'tool' needs tool_call_id")
        if self.tool_calls is not None and self.role != "assistant":
            raise FieldError("tool_calls", "only assistant messages can carry tool_calls")
        if self.tool_calls == []:  # some clients send an empty list; upstreams refuse one
            self.tool_calls = None
        return self

    @property
    def text(self) -> str:
        """The content as one text, as a local model, retrieval, the router and the log read
        it: text parts joined by `PART_SEPARATOR`."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return PART_SEPARATOR.join(part.text for part in self.content)


# Where a refusal part was in an assistant's content until the message is read: the parts
# after it keep their places, so that an error names the part as the client numbered it.
_REFUSAL_PLACE = TextPart(type="text", text="")


def _refusal_parts_as_refusal(data: dict[str, Any], parts: list[Any]) -> dict[str, Any]:
    """An assistant turn's refusal parts (OpenAI's, as a client sends an answer back) in the
    message's `refusal`, as the Responses API takes them; its text parts stay its content."""
    places = [
        index
        for index, part in enumerate(parts)
        if isinstance(part, dict) and part.get("type") == "refusal"
    ]
    if not places:
        return data
    refusals = [data.get("refusal") or ""]
    for index in places:
        text = parts[index].get("refusal")
        if not isinstance(text, str):
            raise FieldError(f"content.{index}.refusal", "a refusal part needs its refusal text")
        refusals.append(text)
    placed = [_REFUSAL_PLACE if index in places else part for index, part in enumerate(parts)]
    return {**data, "content": placed, "refusal": "".join(refusals)}


def _check_part_kinds(parts: list[Any]) -> None:
    for index, part in enumerate(parts):
        if isinstance(part, dict) and not isinstance(part.get("type"), str):
            raise FieldError(f"content.{index}.type", "each content part needs a type")
    for index, part in enumerate(parts):
        if isinstance(part, dict) and part["type"] != "text":
            raise FieldError(
                f"content.{index}.type",
                f"content parts of type {part['type']} are not supported: the models here read"
                " text only",
            )


class Prediction(ApiModel):
    type: Literal["content"]
    content: str | ContentParts


MAX_CHOICES = 128  # OpenAI's limit for `n`
INT64_MAX = 2**63 - 1  # OpenAI's integers are int64: a 400-digit max_tokens is refused as such
# OpenAI allows 4. llama.cpp's server and vLLM set no limit, and code editors (Continue) send
# a model's whole list of stop strings to local servers; an OpenAI upstream refuses more
# than 4 itself.
MAX_STOP_SEQUENCES = 64
# OpenAI's legacy Completions API writes at most 16 tokens unless told otherwise ("integer or
# null, defaults to 16"), and vLLM does the same; chat's answers are limited by the context only.
COMPLETION_MAX_TOKENS = 16
SMALLFIRST_FIELDS = {"route", "max_strong_share", "min_quality", "privacy", "rag"}
# OpenAI's paid processing tiers (the openai SDK's list): passed on to remote tiers; a local
# model has one way to answer, whichever is asked.
ServiceTier = Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"]


class SamplingParams(ApiModel):
    """Fields common to /v1/chat/completions and /v1/completions."""

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=INT64_MAX)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-INT64_MAX - 1, le=INT64_MAX)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)  # answers to the same prompt (`choices`)
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    # Sampling knobs of llama.cpp's server and vLLM (not OpenAI's): local models use them, and
    # a remote tier gets them as sent (an OpenAI upstream refuses them by name). Unset, local
    # models use llama.cpp's defaults: top_k 40, min_p 0.05, no repeat penalty.
    top_k: int | None = Field(default=None, ge=-1, le=INT64_MAX)  # 0 or -1: off
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)  # vLLM's name for it
    # token id (as text, as JSON keys are) -> a bias from -100 (never) to 100 (only this),
    # in the vocabulary of the model that answers: a request with one names its model.
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # OpenAI's newer split of `user`: who is asking (abuse checks) and which requests share a
    # prompt cache. Passed to remote tiers (pseudonymous unless allowed, see privacy_step.py);
    # local models cache prompts by their tokens, whatever the key. The limits are those the
    # openai SDK we pin documents: 128 characters for the first, none for the second.
    safety_identifier: str | None = Field(default=None, max_length=128)
    prompt_cache_key: str | None = None
    # smallfirst extensions (`extra_body` in the openai client)
    route: Literal["auto", "edge", "onprem", "cloud"] | None = None  # or x-smallfirst-route
    max_strong_share: float | None = Field(default=None, ge=0.0, le=1.0)
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    privacy: Literal["allow", "redact", "local_only", "block"] | None = None

    @field_validator("logit_bias")
    @classmethod
    def _token_ids_and_biases(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not (token.isascii() and token.isdigit()):
                raise ValueError(f"logit_bias keys are token ids (0, 1, ...), not {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"logit_bias values go from -100 to 100; token {token}: {bias}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SamplingParams:
        if self.stream_options is not None and not self.stream:
            raise FieldError(  # OpenAI's words
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            )
        both = (self.repeat_penalty, self.repetition_penalty)
        if None not in both and both[0] != both[1]:
            raise FieldError(
                "repetition_penalty", "repeat_penalty and repetition_penalty name the same penalty"
            )
        return self

    @property
    def penalty_for_repeats(self) -> float:
        """The multiplicative repeat penalty, under either name (1: none)."""
        return self.repeat_penalty or self.repetition_penalty or 1.0

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        return value

    def openai_body(self) -> dict[str, Any]:
        """The request as an upstream OpenAI-compatible server expects it (no extensions), with
        the fields the client sent: defaults it did not send (`logprobs: false`, `n: 1`,
        `echo: false`) are the upstream's own, and some servers refuse fields they lack."""
        unsent = set(type(self).model_fields) - self.model_fields_set
        return self.model_dump(
            mode="json", exclude_none=True, by_alias=True, exclude=SMALLFIRST_FIELDS | unsent
        )

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage_chunk(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=INT64_MAX)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    metadata: Metadata | None = None
    store: bool | None = None
    prompt_cache_options: PromptCacheOptions | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: ServiceTier | None = None
    # Passed on to remote tiers; local models do not adjust their length to it.
    verbosity: Literal["low", "medium", "high"] | None = None
    # For remote reasoning models (o-series, gpt-5, DeepSeek-R1 behind vLLM), passed on as
    # sent; the local models here write no separate reasoning for it to bound.
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    # Text is what every model here writes: ["text"], the default, is all that is accepted.
    modalities: list[Literal["text"]] | None = None
    # Predicted output only makes an OpenAI answer sooner, never different: accepted, and not
    # passed on (its text would leave the machine without the privacy guard reading it).
    prediction: Prediction | None = Field(default=None, exclude=True)
    # smallfirst extension: answer from this document collection, with the model asked for
    rag: str | None = Field(default=None, min_length=1)
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_choice: (
        Literal["none", "auto", "required"] | NamedToolChoice | AllowedToolsChoice | None
    ) = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            # OpenAI's 400, equal values too: one limit would otherwise be dropped silently,
            # and an OpenAI upstream would refuse the request that a local model answered.
            raise FieldError(
                "max_tokens",
                "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not"
                " supported.",
                code="invalid_parameter_combination",
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise FieldError("top_logprobs", "top_logprobs requires logprobs to be true")
        if self.tool_choice not in (None, "none") and not self.tools:
            raise FieldError("tool_choice", "tool_choice needs tools")
        offered = {tool.function.name for tool in self.tools or []}
        if isinstance(self.tool_choice, NamedToolChoice):
            wanted = self.tool_choice.function.name
            if wanted not in offered:
                raise FieldError(
                    "tool_choice", f"tool_choice names {wanted!r}, which is not among the tools"
                )
        if isinstance(self.tool_choice, AllowedToolsChoice):
            self._narrow_to_allowed(self.tool_choice.allowed_tools, offered)
        _check_tool_turns(self.messages)
        return self

    def _narrow_to_allowed(self, allowed: AllowedTools, offered: set[str]) -> None:
        """`allowed_tools` as every tier can honour it: the tools narrowed to the allowed
        ones, and its mode as the choice (local models and upstreams without `allowed_tools`
        would otherwise offer the whole list)."""
        names = {choice.function.name for choice in allowed.tools}
        missing = sorted(names - offered)
        if missing:
            raise FieldError(
                "tool_choice.allowed_tools.tools",
                f"allowed_tools names {missing[0]!r}, which is not among the tools",
            )
        self.tools = [tool for tool in self.tools or [] if tool.function.name in names]
        self.tool_choice = allowed.mode

    @property
    def wants_tools(self) -> bool:
        """The answer may be a tool call (tools offered and not switched off)."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def token_limit_field(self) -> str:
        """The field the client limits the answer with (`max_tokens` when it sets none)."""
        return "max_completion_tokens" if self.max_completion_tokens else "max_tokens"

    @property
    def logprob_alternatives(self) -> int | None:
        """None when no logprobs were asked; else how many top alternatives per token."""
        return (self.top_logprobs or 0) if self.logprobs else None


def _check_tool_turns(messages: list[ChatMessage]) -> None:
    """As OpenAI has it: tool results follow the assistant turn that called the tools, one
    per call, and answer its calls only. A local model would otherwise read a result that
    answers nothing, and the same conversation would be a 400 only when routed to the cloud."""
    calls: dict[str, bool] = {}  # the calling turn's ids -> answered yet
    caller = -1  # that turn's position
    for position, message in enumerate(messages):
        if message.role == "tool":
            if caller < 0:
                raise FieldError(
                    f"messages.{position}.role",
                    "messages with role 'tool' must be a response to a preceding message with"
                    " 'tool_calls'",
                )
            if message.tool_call_id not in calls:
                raise FieldError(
                    f"messages.{position}.tool_call_id",
                    f"'tool_call_id' of {message.tool_call_id!r} not found in 'tool_calls' of"
                    f" the message at messages.{caller}",
                )
            calls[str(message.tool_call_id)] = True
            continue
        _check_answered(calls, caller)
        calls = {call.id: False for call in message.tool_calls or []}
        caller = position if calls else -1
    _check_answered(calls, caller)


def _check_answered(calls: dict[str, bool], caller: int) -> None:
    unanswered = [call_id for call_id, answered in calls.items() if not answered]
    if unanswered:
        raise FieldError(
            f"messages.{caller}.role",
            "An assistant message with 'tool_calls' must be followed by tool messages"
            " responding to each 'tool_call_id'. The following tool_call_ids did not have"
            f" response messages: {', '.join(unanswered)}",
        )


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class TextRequest(SamplingParams):
    # Text, or token ids of the named model's vocabulary (as evaluation harnesses send), or a
    # batch of either.
    prompt: str | list[str] | TokenIds | list[TokenIds]
    # 0 with echo: score the prompt only. Unsent or null: OpenAI's legacy default (below).
    max_tokens: int = Field(default=COMPLETION_MAX_TOKENS, ge=0, le=INT64_MAX)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False  # the answer starts with the prompt (with its tokens' logprobs)
    suffix: str | None = None  # fill in the middle: the answer goes between prompt and suffix
    best_of: int | None = Field(default=None, ge=1, le=INT64_MAX)  # n (as asked) or refused

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _default_when_null(cls, value: Any) -> Any:
        return COMPLETION_MAX_TOKENS if value is None else value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        """One message for every wrong shape (the union's own errors name its first member)."""

        def token_ids(item: Any) -> bool:
            return (
                isinstance(item, list)
                and bool(item)
                and all(type(t) is int and t >= 0 for t in item)  # bools are not ids
            )

        def batch(items: Any) -> bool:
            return (
                isinstance(items, list)
                and bool(items)
                and (all(isinstance(item, str) for item in items) or all(map(token_ids, items)))
            )

        if isinstance(value, str) or token_ids(value) or batch(value):
            return value
        raise ValueError(
            "prompt must be a text, a list of texts, token ids (integers >= 0), or a list of"
            " token-id lists, none of them empty"
        )

    @model_validator(mode="after")
    def _check(self) -> TextRequest:
        if len(self.prompts) * self.n > MAX_CHOICES:
            raise FieldError(
                "prompt",
                f"at most {MAX_CHOICES} answers per request (prompts x n); got "
                f"{len(self.prompts)} x {self.n}: send the prompts in smaller batches",
            )
        if self.max_tokens == 0 and not self.echo:
            raise FieldError(
                "max_tokens", "max_tokens 0 only makes sense with echo (to score the prompt)"
            )
        if self.suffix is not None and self.echo:
            raise FieldError(
                "echo", "echo returns the prompt, and with a suffix the answer goes between"
            )
        if self.suffix is not None and any(isinstance(p, list) for p in self.prompts):
            raise FieldError("suffix", "suffix needs a text prompt, not token ids")
        if self.best_of is not None and self.best_of < self.n:  # OpenAI's rule
            raise FieldError("best_of", "best_of must be greater than or equal to n")
        if (self.best_of or 1) > self.n:  # equal to n, it picks all n: as asked without it
            raise FieldError(
                "best_of",
                "best_of > n is not supported: it would generate best_of answers and return"
                " the n likeliest; ask for more answers with logprobs and compare them instead",
            )
        return self

    def openai_body(self) -> dict[str, Any]:
        """`SamplingParams.openai_body`, with `max_tokens` even when unsent: not every
        upstream has OpenAI's default (llama.cpp's server writes to the end of the context)."""
        return {**super().openai_body(), "max_tokens": self.max_tokens}

    # A prompt of token ids, once the model's tokenizer has read it (`with_prompt_read`).
    _read_ids: list[int] | None = PrivateAttr(default=None)

    @property
    def prompts(self) -> list[str | list[int]]:
        """The prompts of the request: one, or a batch (each answered as a request of its
        own, `Gateway.complete_each_prompt`)."""
        prompt = self.prompt
        if isinstance(prompt, str) or isinstance(prompt[0], int):
            return [prompt]  # one text, or the ids of one prompt
        return cast(list[str | list[int]], list(prompt))  # texts, or lists of ids

    @property
    def prompt_text(self) -> str:
        """The text of a one-prompt request (for ids: as their model's tokenizer read them)."""
        if len(self.prompts) != 1:
            raise ValueError("a batch of prompts is answered prompt by prompt")
        prompt = self.prompts[0]
        if not isinstance(prompt, str):
            raise ValueError("a prompt of token ids is read by its model's tokenizer first")
        return prompt

    @property
    def prompt_tokens(self) -> list[int] | None:
        """The token ids the client sent as the prompt of a one-prompt request, if it did."""
        prompt = self.prompts[0] if len(self.prompts) == 1 else None
        return prompt if isinstance(prompt, list) else self._read_ids

    @property
    def prompt_needs_reading(self) -> bool:
        """A one-prompt request of token ids whose text is not known yet."""
        return len(self.prompts) == 1 and isinstance(self.prompts[0], list)

    def with_prompt_read(self, text: str) -> TextRequest:
        """This request of token ids, with their text (what the guard, the log and the router
        see); the model still reads the ids as sent."""
        ids = self.prompt_tokens
        read = self.model_copy(update={"prompt": text})
        read._read_ids = ids
        return read

    @property
    def token_limit(self) -> int | None:
        return self.max_tokens

    @property
    def logprob_alternatives(self) -> int | None:
        return self.logprobs


GenerateRequest = ChatRequest | TextRequest
