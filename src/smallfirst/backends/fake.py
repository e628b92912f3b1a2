"""A backend that replays queued answers: drives hermetic tests and the overhead benchmark."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass

from smallfirst.backends.base import Backend, info_from_config
from smallfirst.backends.local_tools import offered_tools
from smallfirst.completions import (
    Chunk,
    Completion,
    FinishReason,
    ModelInfo,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from smallfirst.config import FakeModel
from smallfirst.errors import ContextLengthExceeded, InvalidRequest
from smallfirst.types import ChatRequest, FunctionCall, GenerateRequest, TextRequest, ToolCall


@dataclass(frozen=True)
class FakeReply:
    text: str
    # per token; a cascade test sets it low to look unsure, or None for a model that sends none
    logprob: float | None = -0.05


class ByteTokenizer:
    """A tokenizer for tests: one token per UTF-8 byte."""

    vocab_size = 256

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        return list(text.encode())

    def decode(self, tokens: list[int]) -> str:
        if any(token >= self.vocab_size for token in tokens):
            raise InvalidRequest("a byte tokenizer has tokens 0 to 255", param="tokens")
        return bytes(tokens).decode(errors="replace")

    def info(self) -> dict[str, object]:
        return {"eos_token": None, "bos_token": None, "pad_token": None, "chat_template": None}


class FakeBackend(Backend):
    def __init__(self, config: FakeModel) -> None:
        self.config = config
        self._queued: deque[FakeReply | BaseException] = deque()
        self._turn = 0
        self.requests: list[GenerateRequest] = []
        self.closed_early = 0  # streams abandoned by their consumer

    def queue(self, *replies: str | FakeReply | BaseException) -> None:
        for reply in replies:
            self._queued.append(FakeReply(reply) if isinstance(reply, str) else reply)

    def info(self) -> ModelInfo:
        # a cloud one plays a remote model, as for its tokenizer and context
        return info_from_config(self.config, upstream=self.config.tier == "cloud")

    def tokenizer(self) -> AbstractAsyncContextManager[ByteTokenizer | None]:
        # clouds keep theirs
        return nullcontext(ByteTokenizer() if self.config.tier != "cloud" else None)

    async def check_context(self, request: GenerateRequest) -> bool:
        if self.config.tier == "cloud":  # as a remote model: only its answer tells
            return False
        self._refuse_beyond_context(request)
        return True

    def _refuse_beyond_context(self, request: GenerateRequest) -> None:
        """As an engine does, a prompt (its tokens as `usage` counts them) that leaves no room
        for a token of answer in `context_length`. A larger `max_tokens` is not refused: tests
        ask for more than a context holds to hold a large budget estimate."""
        prompt = _usage(request, []).prompt_tokens
        if prompt >= self.config.context_length:
            raise ContextLengthExceeded.told(
                self.config.context_length,
                prompt,
                1,
                completion_text="at least 1 in the completion",
                param="messages" if isinstance(request, ChatRequest) else "prompt",
            )

    def _next(self, request: GenerateRequest) -> FakeReply:
        self.requests.append(request)
        self._refuse_beyond_context(request)
        if self._queued:
            item = self._queued.popleft()
            if isinstance(item, BaseException):
                raise item
            return item
        reply = self.config.replies[self._turn % len(self.config.replies)]
        self._turn += 1
        return FakeReply(reply)

    async def complete(self, request: GenerateRequest) -> Completion:
        reply = self._next(request)
        call = _tool_call_for(request, self._turn)
        if call is not None:
            call, pieces, finish = _cut_at_token_limit(call, request)
            return Completion(
                text="", finish_reason=finish, usage=_usage(request, pieces), tool_calls=[call]
            )
        echoed, pieces = _echoed(request), _answer_pieces(request, reply)
        if self.config.token_delay_s:
            await asyncio.sleep(self.config.token_delay_s * len(pieces))
        return Completion(
            text="".join(echoed + pieces),
            finish_reason=_finish(request, reply),
            usage=_usage(request, pieces),
            logprobs=_logprobs(echoed + pieces, reply, request),
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        reply = self._next(request)
        call = _tool_call_for(request, self._turn)
        if call is not None:
            async for chunk in _streamed_tool_call(call, request):
                yield chunk
            return
        echoed, pieces = _echoed(request), _answer_pieces(request, reply)
        finished = False
        try:
            for piece in echoed + pieces:
                if self.config.token_delay_s:
                    await asyncio.sleep(self.config.token_delay_s)
                yield Chunk(text=piece, logprobs=_logprobs([piece], reply, request))
            finished = True
            yield Chunk(finish_reason=_finish(request, reply), usage=_usage(request, pieces))
        finally:
            if not finished:
                self.closed_early += 1


def _echoed(request: GenerateRequest) -> list[str]:
    """The prompt's pieces when the request asks for it back (`echo`)."""
    return _pieces(request.prompt_text) if isinstance(request, TextRequest) and request.echo else []


def _finish(request: GenerateRequest, reply: FakeReply) -> FinishReason:
    limit = request.token_limit
    cut = limit is not None and (limit == 0 or len(_pieces(reply.text)) > limit)
    return "length" if cut else "stop"


def _answer_pieces(request: GenerateRequest, reply: FakeReply) -> list[str]:
    """The reply's words, each a token, cut at the request's token limit as a model's is."""
    pieces = _pieces(reply.text)
    return pieces if request.token_limit is None else pieces[: request.token_limit]


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


def _usage(request: GenerateRequest, pieces: list[str]) -> Usage:
    if isinstance(request, ChatRequest):
        prompt = sum(len(m.text.split()) + 4 for m in request.messages)
    else:
        prompt = len(request.prompt_text.split())
    return Usage(prompt_tokens=prompt, completion_tokens=len(pieces))


def _logprobs(
    pieces: list[str], reply: FakeReply, request: GenerateRequest
) -> list[TokenLogprob] | None:
    """The pieces' logprobs, when asked for and the reply has them."""
    if request.logprob_alternatives is None or reply.logprob is None:
        return None
    return [TokenLogprob(token=p, logprob=reply.logprob) for p in pieces]


def _tool_call_for(request: GenerateRequest, turn: int) -> ToolCall | None:
    """Offered tools and not yet given a tool's result, the fake calls the chosen tool (or the
    first) with the last user text as `{"input": ...}`: deterministic, and it shows what text
    reached the model (redacted or not) in the arguments."""
    if not isinstance(request, ChatRequest) or request.messages[-1].role == "tool":
        return None
    tools = offered_tools(request)
    if not tools:
        return None
    user_texts = [m.text for m in request.messages if m.role == "user"]
    arguments = json.dumps({"input": user_texts[-1] if user_texts else ""})
    return ToolCall(
        id=f"call_fake_{turn}",
        function=FunctionCall(name=tools[0].function.name, arguments=arguments),
    )


def _cut_at_token_limit(
    call: ToolCall, request: GenerateRequest
) -> tuple[ToolCall, list[str], FinishReason]:
    """The call as far as the request's token limit lets it be written (its arguments' words
    are its tokens), its tokens and its finish reason: cut off, it is a call with the
    arguments written so far and finishes with "length", as OpenAI's do."""
    pieces = _pieces(call.function.arguments)
    limit = request.token_limit
    if limit is None or len(pieces) <= limit:
        return call, pieces, "tool_calls"
    written = "".join(pieces[:limit])
    cut = call.model_copy(
        update={"function": FunctionCall(name=call.function.name, arguments=written)}
    )
    return cut, pieces[:limit], "length"


async def _streamed_tool_call(call: ToolCall, request: GenerateRequest) -> AsyncIterator[Chunk]:
    """As OpenAI streams a call: id and name first, then the arguments in small pieces."""
    call, tokens, finish = _cut_at_token_limit(call, request)
    yield Chunk(tool_calls=[ToolCallDelta(index=0, id=call.id, name=call.function.name)])
    arguments = call.function.arguments
    for piece in [arguments[i : i + 7] for i in range(0, len(arguments), 7)]:
        yield Chunk(tool_calls=[ToolCallDelta(index=0, arguments=piece)])
    yield Chunk(finish_reason=finish, usage=_usage(request, tokens))
