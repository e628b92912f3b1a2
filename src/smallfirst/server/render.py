"""OpenAI response bodies for chat and text completions, whole and chunked.

The routes (`routes.py`) hand over the gateway's `Answer` (or its stream of engine `Chunk`s)
and get back OpenAI's JSON: `completion_body` for a whole answer, `ChunkRenderer` for the
events of a stream, `batch_body` / `batch_stream` for a list of prompts. Each answer also
carries the `smallfirst` extension (`route_fields`; a stream on its first event): which
model answered and why.
"""

from __future__ import annotations

import codecs
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from smallfirst.answers import Answer, RouteInfo
from smallfirst.completions import (
    Chunk,
    Completion,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from smallfirst.errors import SmallfirstError
from smallfirst.server.errors import error_body
from smallfirst.server.sse import DONE, data_frame, sse_stream
from smallfirst.streams import replay
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest


def route_fields(route: RouteInfo, citations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The `smallfirst` extension field: which model answered and why (and from which sources)."""
    extra = {"citations": citations} if citations is not None else {}
    return {
        **extra,
        "tier": route.model.tier,
        "router": route.router,
        "reason": route.reason,
        "score": _finite(route.score),
        "threshold": _finite(route.threshold),  # None for "never strong" (an infinite threshold)
        "escalations": list(route.escalations),
    }


ROUTE_HEADER_NAMES = (
    "x-smallfirst-model",
    "x-smallfirst-tier",
    "x-smallfirst-router",
    "x-smallfirst-route-score",
    "x-smallfirst-route-threshold",
    "x-smallfirst-escalations",
)


def route_headers(route: RouteInfo) -> dict[str, str]:
    headers = {
        "x-smallfirst-model": route.model.id,
        "x-smallfirst-tier": route.model.tier,
        "x-smallfirst-router": route.router,
    }
    if (score := _finite(route.score)) is not None:
        headers["x-smallfirst-route-score"] = f"{score:.4f}"
    if (threshold := _finite(route.threshold)) is not None:
        headers["x-smallfirst-route-threshold"] = f"{threshold:.4f}"
    if route.escalations:
        headers["x-smallfirst-escalations"] = ",".join(route.escalations)
    return headers


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _chat_logprobs(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {"content": token_logprobs(items), "refusal": None}


def token_logprobs(items: list[TokenLogprob]) -> list[dict[str, Any]]:
    """OpenAI's logprobs of a text, token by token (chat's `content`, and the Responses
    API's `output_text.logprobs`)."""
    return [
        {
            "token": i.token,
            "logprob": i.logprob,
            "bytes": i.token_bytes,
            "top_logprobs": [
                {"token": t.token, "logprob": t.logprob, "bytes": t.token_bytes} for t in i.top
            ],
        }
        for i in items
    ]


class _TextOffsets:
    """Where each token of a text answer starts in its text, in characters, token by token
    (whole or streamed, the same). A token's bytes may hold part of a character (an emoji is
    several tokens, each shown as U+FFFD): it starts where that character does, and only the
    token that completes a character moves the next one on."""

    def __init__(self) -> None:
        # decoded as the engines decode their text: a broken sequence is one U+FFFD
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._characters = 0
        self._upstream_start: int | None = None  # an upstream's offset of the answer's start

    def start_of(self, token: TokenLogprob, text_length: int) -> int:
        """The next token's offset, never past the `text_length` characters known so far (a
        token cut off by a stop sequence starts at the end of the text). An upstream's own
        offsets are kept (its tokens come without their bytes), counted from the answer's
        start (some count from the start of the prompt)."""
        if token.text_offset is not None:
            if self._upstream_start is None:
                self._upstream_start = token.text_offset
            return min(token.text_offset - self._upstream_start, text_length)
        start = min(self._characters, text_length)
        self._characters += len(self._decoder.decode(bytes(token.token_bytes)))
        return start


def _text_alternatives(item: TokenLogprob) -> dict[str, float] | None:
    """A token's top alternatives, with the token itself among them (OpenAI: "The API will
    always return the logprob of the sampled token, so there may be up to logprobs+1
    elements"), also when it is not among the most likely or `logprobs` is 0."""
    if item.logprob is None:
        return None
    alternatives = {t.token: t.logprob for t in item.top}
    alternatives.setdefault(item.token, item.logprob)
    return alternatives


def _text_logprobs(
    items: list[TokenLogprob] | None, offsets: _TextOffsets, text_length: int
) -> dict[str, Any] | None:
    if items is None:
        return None
    return {
        "tokens": [i.token for i in items],
        "token_logprobs": [i.logprob for i in items],
        # null where nothing predicts the token (an echoed prompt's first), as OpenAI sends it
        "top_logprobs": [_text_alternatives(i) for i in items],
        "text_offset": [offsets.start_of(item, text_length) for item in items],
    }


def completion_body(
    request: GenerateRequest,
    choices: list[Completion],
    usage: Usage,
    route: RouteInfo,
    request_id: str,
    citations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    common = {
        "id": _id(request, request_id),
        "created": int(time.time()),
        "model": route.model.id,
        **_served_by(choices[0]),
        "usage": usage.as_openai(),
        "smallfirst": route_fields(route, citations),
    }
    if isinstance(request, ChatRequest):
        chat_choices = [_chat_choice(index, choice) for index, choice in enumerate(choices)]
        return {"object": "chat.completion", "choices": chat_choices, **common}
    text_choices = [
        {
            "index": index,
            "text": choice.text,
            "logprobs": _text_logprobs(choice.logprobs, _TextOffsets(), len(choice.text)),
            "finish_reason": choice.finish_reason,
        }
        for index, choice in enumerate(choices)
    ]
    return {"object": "text_completion", "choices": text_choices, **common}


def _served_by(answer: Completion | Chunk) -> dict[str, str | None]:
    """The upstream's `system_fingerprint` (null from local models, as OpenAI's may be) and
    its `service_tier`, where it told one."""
    served: dict[str, str | None] = {"system_fingerprint": answer.system_fingerprint}
    if answer.service_tier is not None:
        served["service_tier"] = answer.service_tier
    return served


def batch_body(request: TextRequest, answers: list[Answer], request_id: str) -> dict[str, Any]:
    """A batch of prompts as one text completion: prompt p's answers are choices p * n to
    p * n + n - 1, as OpenAI orders them; usage adds up the prompts; `model` and `smallfirst`
    are the first prompt's, and `smallfirst.batch` says how each prompt was routed."""
    choices = [choice for answer in answers for choice in answer.choices]
    body = completion_body(request, choices, _batch_usage(answers), answers[0].route, request_id)
    body["smallfirst"]["batch"] = _batch_routes(answers)
    return body


def batch_stream(
    request: TextRequest, answers: list[Answer], request_id: str
) -> AsyncIterator[bytes]:
    """A batch as OpenAI streams one: each choice whole in one event, under the index
    `batch_body` gives it, then its finish; the usage of all comes last."""
    choices = [choice for answer in answers for choice in answer.choices]
    usage = _batch_usage(answers)
    chunks = [
        chunk
        for index, choice in enumerate(choices)
        for chunk in (
            Chunk(index=index, text=choice.text, logprobs=choice.logprobs),
            Chunk(
                index=index,
                finish_reason=choice.finish_reason,
                usage=usage if index == len(choices) - 1 else None,
            ),
        )
    ]
    renderer = ChunkRenderer(request, answers[0].route, request_id, choices=len(choices))
    renderer.batch = _batch_routes(answers)
    return sse_stream(renderer, replay(chunks))


def _batch_usage(answers: list[Answer]) -> Usage:
    return Usage(
        prompt_tokens=sum(answer.usage.prompt_tokens for answer in answers),
        cached_tokens=sum(answer.usage.cached_tokens for answer in answers),
        completion_tokens=sum(answer.usage.completion_tokens for answer in answers),
        reasoning_tokens=sum(answer.usage.reasoning_tokens for answer in answers),
    )


def _batch_routes(answers: list[Answer]) -> list[dict[str, Any]]:
    return [{"model": answer.route.model.id, **route_fields(answer.route)} for answer in answers]


def _chat_choice(index: int, completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text,
        "refusal": completion.refusal,
    }
    if completion.reasoning is not None:  # vLLM's field name (DeepSeek's too)
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls or completion.refusal:
        message["content"] = completion.text or None  # as OpenAI sends it beside these
    if completion.tool_calls:
        message["tool_calls"] = [call.model_dump() for call in completion.tool_calls]
    return {
        "index": index,
        "message": message,
        "logprobs": _chat_logprobs(completion.logprobs),
        "finish_reason": completion.finish_reason,
    }


class ChunkRenderer:
    """Turns engine chunks into OpenAI stream events, in OpenAI's order."""

    closing = DONE

    @staticmethod
    def frame(event: dict[str, Any]) -> bytes:
        return data_frame(event)

    @staticmethod
    def failure(error: SmallfirstError) -> list[dict[str, Any]]:
        return [error_body(error)]

    @staticmethod
    def ending() -> list[dict[str, Any]]:
        return []  # each chunk told all it holds

    def __init__(
        self,
        request: GenerateRequest,
        route: RouteInfo,
        request_id: str,
        citations: list[dict[str, Any]] | None = None,
        *,
        choices: int | None = None,
    ) -> None:
        """`choices`: how many answers the stream holds (`request.n` unless a batch's)."""
        self._citations = citations
        self.batch: list[dict[str, Any]] | None = None  # a batch's routes, told like the route
        self.request = request
        self.chat = isinstance(request, ChatRequest)
        self.base = {
            "id": _id(request, request_id),
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": int(time.time()),
            "model": route.model.id,
            "system_fingerprint": None,
        }
        self.include_usage = request.include_usage_chunk
        choices = choices or request.n
        self._text_offsets = [_TextOffsets() for _ in range(choices)]
        self._text_lengths = [0] * choices  # characters of each answer sent so far
        self._route = route
        self._route_told = False  # the first event says who answers and why
        self._opened: set[int] = set()  # chat answers whose role has been sent

    def _event(
        self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {**self.base, "choices": choices}
        if self.include_usage:
            event["usage"] = usage
        return event

    def opening(self) -> list[dict[str, Any]]:
        """Nothing yet: a chat answer opens with its role on its first chunk, which says
        whether it is text (`content: ""`), a refusal or calls (`content: null`, as OpenAI
        sends them)."""
        return []

    def _told(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`events`, the first of them with the `smallfirst` field if none had it yet (a text
        completion's stream has no opening: it had none at all; QA)."""
        if events and not self._route_told:
            events[0]["smallfirst"] = route_fields(self._route, self._citations)
            if self.batch is not None:
                events[0]["smallfirst"]["batch"] = self.batch
            self._route_told = True
        return events

    def events(self, chunk: Chunk) -> list[dict[str, Any]]:
        if chunk.system_fingerprint is not None or chunk.service_tier is not None:
            self.base.update(_served_by(chunk))
        out = []
        written = bool(
            chunk.text or chunk.logprobs or (self.chat and (chunk.refusal or chunk.reasoning))
        )
        calls: dict[str, Any] = {}
        if self.chat and chunk.index not in self._opened:
            self._opened.add(chunk.index)
            if chunk.tool_calls and not written:
                calls = {"role": "assistant", "content": None, "refusal": None}
            else:
                out.append(self._event([_delta_choice(chunk.index, _opening_delta(chunk))]))
        if written:
            out.append(self._event([self._choice(chunk, finish=None)]))
        if chunk.tool_calls and self.chat:
            calls["tool_calls"] = [_tool_call_delta(d) for d in chunk.tool_calls]
            out.append(self._event([_delta_choice(chunk.index, calls)]))
        if chunk.finish_reason is not None:
            ending = Chunk(index=chunk.index)
            out.append(self._event([self._choice(ending, finish=chunk.finish_reason)]))
        if self.include_usage and chunk.usage is not None:  # after the finishes, as OpenAI's
            out.append({**self.base, "choices": [], "usage": chunk.usage.as_openai()})
        return self._told(out)

    def _choice(self, chunk: Chunk, finish: str | None) -> dict[str, Any]:
        if self.chat:
            return {
                "index": chunk.index,
                "delta": _chat_delta(chunk),
                "logprobs": _chat_logprobs(chunk.logprobs),
                "finish_reason": finish,
            }
        self._text_lengths[chunk.index] += len(chunk.text)
        logprobs = _text_logprobs(
            chunk.logprobs, self._text_offsets[chunk.index], self._text_lengths[chunk.index]
        )
        return {
            "index": chunk.index,
            "text": chunk.text,
            "logprobs": logprobs,
            "finish_reason": finish,
        }


def _delta_choice(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def _opening_delta(chunk: Chunk) -> dict[str, Any]:
    """An answer's role, and whether it is text (`content: ""`) or a refusal (`content: null,
    refusal: ""`, as OpenAI opens one: given `content: ""`, openai's stream helper told a
    `content.delta` and ended with `content == ""` beside the refusal)."""
    if chunk.refusal and not chunk.text:
        return {"role": "assistant", "content": None, "refusal": ""}
    return {"role": "assistant", "content": "", "refusal": None}


def _chat_delta(chunk: Chunk) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": chunk.text} if chunk.text or chunk.logprobs else {}
    if chunk.reasoning:
        delta["reasoning_content"] = chunk.reasoning
    if chunk.refusal:
        delta["refusal"] = chunk.refusal
    return delta


def _tool_call_delta(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's shape: the first piece of a call has id, type and name; later ones arguments."""
    function: dict[str, str] = {"arguments": delta.arguments}
    piece: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        piece.update(id=delta.id, type="function")
    if delta.name is not None:
        function = {"name": delta.name, **function}
    piece["function"] = function
    return piece


def _id(request: GenerateRequest, request_id: str) -> str:
    return ("chatcmpl-" if isinstance(request, ChatRequest) else "cmpl-") + request_id
