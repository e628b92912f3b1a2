"""`POST /v1/responses` answers: the Response object, whole or as its stream of typed events
(`response.created` ... `response.output_text.delta` ... `response.completed`), built from the
same engine chunks as chat completions."""

from __future__ import annotations

import json
import time
from typing import Any

from smallfirst.answers import RouteInfo
from smallfirst.completions import Chunk, Completion, TokenLogprob, ToolCallDelta, Usage
from smallfirst.errors import SmallfirstError
from smallfirst.server.render import route_fields, token_logprobs
from smallfirst.server.responses_api_request import FORMAT_NAME, ResponsesRequest
from smallfirst.server.sse import typed_frame
from smallfirst.types import FunctionCall, ToolCall

# Finish reasons that leave a response incomplete -> OpenAI's `incomplete_details.reason`
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
REFUSAL_INDEX = 1  # the refusal part's content_index: after the text part


def response_body(
    request: ResponsesRequest,
    completion: Completion,
    route: RouteInfo,
    request_id: str,
    citations: list[dict[str, Any]] | None = None,
    *,
    stored: bool = False,
) -> dict[str, Any]:
    """The Response object; `stored`: it is to be kept (`store`)."""
    output: list[dict[str, Any]] = []
    if completion.text or completion.refusal or not completion.tool_calls:
        logprobs = completion.logprobs or []
        text, refusal = completion.text, completion.refusal
        output.append(_message(f"msg_{request_id}_0", text, "completed", logprobs, refusal))
    for call in completion.tool_calls or []:
        item_id = f"fc_{request_id}_{len(output)}"
        output.append(_function_call(item_id, call, "completed"))
    output[-1]["status"] = _last_item_status(completion.finish_reason)
    finished = (completion.finish_reason, completion.usage)
    created_at = int(time.time())
    return _response(request, route, request_id, created_at, citations, output, *finished, stored)


def _response(
    request: ResponsesRequest,
    route: RouteInfo,
    request_id: str,
    created_at: int,
    citations: list[dict[str, Any]] | None,
    output: list[dict[str, Any]],
    finish_reason: str | None,
    usage: Usage | None,
    stored: bool,
) -> dict[str, Any]:
    """The Response object; `finish_reason` None while it is still being generated."""
    if finish_reason is None:
        status, incomplete = "in_progress", None
    elif finish_reason in INCOMPLETE_REASONS:
        status, incomplete = "incomplete", {"reason": INCOMPLETE_REASONS[finish_reason]}
    else:
        status, incomplete = "completed", None
    return {
        "id": f"resp_{request_id}",
        "object": "response",
        "created_at": created_at,
        # OpenAI's: only once completed (a response cut short has none)
        "completed_at": int(time.time()) if status == "completed" else None,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "model": route.model.id,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": stored,
        "temperature": request.temperature,
        "text": _text_config(request),
        "tool_choice": _tool_choice(request),
        "tools": request.tools or [],
        "top_p": request.top_p,
        "top_logprobs": request.top_logprobs,
        "truncation": request.truncation or "disabled",
        "usage": _usage(usage) if usage is not None else None,
        "user": request.user,
        # as sent (what an upstream is sent may be a pseudonym)
        "safety_identifier": request.safety_identifier,
        "prompt_cache_key": request.prompt_cache_key,
        "background": False,  # every answer here; `background: true` is refused
        "metadata": request.metadata or {},
        "smallfirst": route_fields(route, citations),
    }


def _last_item_status(finish_reason: str) -> str:
    """The status of the item being written when the answer ended: cut by the token limit
    (or an upstream's content filter), it is as incomplete as the response."""
    return "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"


def _message(
    item_id: str,
    text: str,
    status: str,
    logprobs: list[TokenLogprob] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A message item; an upstream's refusal is a content part after the text part (which
    every message here has, as clients read `output_text` from it)."""
    content = [] if status == "in_progress" else [_text_part(text, logprobs or [])]
    if refusal and status != "in_progress":
        content.append(_refusal_part(refusal))
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str, logprobs: list[TokenLogprob]) -> dict[str, Any]:
    """`logprobs` are there when `include` asks for them, else empty (as OpenAI's)."""
    return {
        "type": "output_text",
        "text": text,
        "annotations": [],
        "logprobs": token_logprobs(logprobs),
    }


def _refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def _function_call(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.function.name,
        "arguments": "" if status == "in_progress" else call.function.arguments,
        "status": status,
    }


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        # Prompt-cache writes are not counted here (nor by local models, which keep prompts
        # by themselves): 0, as the openai SDK requires the field.
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _text_config(request: ResponsesRequest) -> dict[str, Any]:
    asked = request.text
    if asked is None or asked.format is None:
        text_format: dict[str, Any] = {"type": "text"}
    else:
        text_format = asked.format.model_dump(by_alias=True, exclude_none=True)
        if text_format["type"] == "json_schema":  # named as the SDK's type requires
            text_format.setdefault("name", FORMAT_NAME)
    return {"format": text_format, "verbosity": asked.verbosity if asked else None}


def _whole_json(text: str) -> bool:
    """Whether a call's arguments so far are a whole JSON text (the call may be finished)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _tool_choice(request: ResponsesRequest) -> str | dict[str, Any]:
    if isinstance(request.tool_choice, str | None):
        return request.tool_choice or "auto"
    return request.tool_choice.model_dump()


class ResponseEvents:
    """Engine chunks -> the Responses stream: a message item for text, one function_call item
    per tool call (its arguments as deltas), each closed before the next opens, as OpenAI
    streams them (clients that follow "the current item" broke on interleaved calls), and all
    before `response.completed`. A call named while the one before it is unfinished (its
    arguments not yet whole JSON: an upstream that names its calls first, then writes their
    arguments by turns) is held until that one is whole, then streamed."""

    def __init__(
        self,
        request: ResponsesRequest,
        route: RouteInfo,
        request_id: str,
        citations: list[dict[str, Any]] | None = None,
        *,
        stored: bool = False,
    ) -> None:
        self._request = request
        self._stored = stored
        # The Response of `response.completed` (or `.incomplete`) once made: what is stored
        self.finished: dict[str, Any] | None = None
        self._route = route
        self._id = request_id
        self._citations = citations
        self._created_at = int(time.time())
        self._sequence = 0
        self._items_opened = 0
        self._done: dict[int, dict[str, Any]] = {}  # output index -> finished item
        self._text: list[str] | None = None  # the open message item's text so far
        self._logprobs: list[TokenLogprob] = []  # and its logprobs, when asked for
        self._refusal: list[str] | None = None  # its refusal part's text so far, once opened
        self._text_index = 0
        self._calls: dict[int, tuple[int, ToolCall]] = {}  # call index -> (output index, call)
        self._held: dict[int, ToolCall] = {}  # calls not opened yet (call index -> call)
        self._closed_calls: dict[int, tuple[int, ToolCall]] = {}  # the same, once done
        self._finish_reason: str | None = None  # once the answer finished

    closing = b""  # the stream ends with response.completed (or .incomplete, or .failed)

    @staticmethod
    def frame(event: dict[str, Any]) -> bytes:
        return typed_frame(event)

    def opening(self) -> list[dict[str, Any]]:
        response = self._snapshot(None, None)
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def events(self, chunk: Chunk) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        # A token that is part of a character (an emoji's first bytes) has logprobs but no
        # text yet: its delta is empty, as the non-streamed answer keeps its logprobs too.
        if chunk.text or (chunk.logprobs and not chunk.tool_calls):
            out += self._open_message()
            assert self._text is not None
            self._text.append(chunk.text)
            self._logprobs += chunk.logprobs or []
            out.append(
                self._event(
                    "response.output_text.delta",
                    **self._text_position(),
                    delta=chunk.text,
                    logprobs=token_logprobs(chunk.logprobs or []),
                )
            )
        if chunk.refusal:
            out += self._refusal_piece(chunk.refusal)
        for delta in chunk.tool_calls or []:
            out += self._call_piece(delta)
        if chunk.finish_reason is not None:  # its items are whole: closed now
            out += self._close_all(_last_item_status(chunk.finish_reason))
            self._finish_reason = chunk.finish_reason
        if chunk.usage is not None:  # with the finish, or after it (an upstream's)
            out += self.ending(chunk.usage)
        return out

    def ending(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        """`response.completed` (or `.incomplete`) once the answer finished, with its `usage`,
        which may come after the finish; at the stream's end, with what came."""
        if self._finish_reason is None or self.finished is not None:
            return []
        response = self._snapshot(self._finish_reason, usage or Usage())
        self.finished = response
        done = "incomplete" if response["status"] == "incomplete" else "completed"
        return [self._event(f"response.{done}", response=response)]

    def failure(self, error: SmallfirstError) -> list[dict[str, Any]]:
        """An error after the stream began: the `error` event (our code and param), the items
        under way closed as incomplete, then `response.failed`, the terminal event clients wait
        for (a stream that just stopped looked like a cut connection). Calls still held back
        were never shown, so they are not in the failed response."""
        told = self._event("error", code=error.code, message=error.message, param=error.param)
        closed = self._close_message("incomplete") + self._close_calls("incomplete")
        response = self._snapshot(None, None)
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"  # OpenAI's codes
        # not stored: a failed response is no conversation to go on from
        response.update(
            status="failed", error={"code": code, "message": error.message}, store=False
        )
        return [told, *closed, self._event("response.failed", response=response)]

    def _open_message(self) -> list[dict[str, Any]]:
        if self._text is not None:
            return []
        closed = self._release_held() + self._close_calls()  # text after calls: they are whole
        self._text, self._text_index = [], self._next_output_index()
        item = _message(self._item_id("msg", self._text_index), "", "in_progress")
        return [
            *closed,
            self._event("response.output_item.added", output_index=self._text_index, item=item),
            self._event(
                "response.content_part.added", **self._text_position(), part=_text_part("", [])
            ),
        ]

    def _refusal_piece(self, refusal: str) -> list[dict[str, Any]]:
        out = self._open_message()
        position = {**self._text_position(), "content_index": REFUSAL_INDEX}
        if self._refusal is None:
            self._refusal = []
            part = _refusal_part("")
            out.append(self._event("response.content_part.added", **position, part=part))
        self._refusal.append(refusal)
        out.append(self._event("response.refusal.delta", **position, delta=refusal))
        return out

    def _close_message(self, status: str = "completed") -> list[dict[str, Any]]:
        if self._text is None:
            return []
        position = self._text_position()
        text, self._text = "".join(self._text), None
        logprobs, self._logprobs = self._logprobs, []
        refusal, self._refusal = "".join(self._refusal or []), None
        item = _message(position["item_id"], text, status, logprobs, refusal)
        self._done[self._text_index] = item
        part = item["content"][0]
        out = [
            self._event(
                "response.output_text.done", **position, text=text, logprobs=part["logprobs"]
            ),
            self._event("response.content_part.done", **position, part=part),
        ]
        if refusal:
            at_refusal = {**position, "content_index": REFUSAL_INDEX}
            out += [
                self._event("response.refusal.done", **at_refusal, refusal=refusal),
                self._event(
                    "response.content_part.done", **at_refusal, part=_refusal_part(refusal)
                ),
            ]
        item_done = {"output_index": self._text_index, "item": item}
        return [*out, self._event("response.output_item.done", **item_done)]

    def _call_piece(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        if delta.index in self._closed_calls:
            return self._late_piece(delta)
        if delta.index in self._held:
            self._held[delta.index].function.arguments += delta.arguments or ""
            return []
        out: list[dict[str, Any]] = []
        if delta.index not in self._calls:
            call = ToolCall(
                id=delta.id or f"call_{self._id}_{delta.index}",
                function=FunctionCall(name=delta.name or "", arguments=""),
            )
            if self._held or self._open_call_unfinished():
                call.function.arguments = delta.arguments or ""
                self._held[delta.index] = call
                return []
            out += self._open_call(delta.index, call)
        out += self._write_arguments(delta.index, delta.arguments or "")
        if self._held and not self._open_call_unfinished():
            out += self._release_held(whole_only=True)
        return out

    def _open_call(self, index: int, call: ToolCall) -> list[dict[str, Any]]:
        out = self._close_message()  # text before a call is a finished message
        out += self._close_calls()  # so is the call before it: calls come one by one
        output_index = self._next_output_index()
        self._calls[index] = (output_index, call)
        item = _function_call(self._item_id("fc", output_index), call, "in_progress")
        out.append(self._event("response.output_item.added", output_index=output_index, item=item))
        return out

    def _write_arguments(self, index: int, arguments: str) -> list[dict[str, Any]]:
        """`arguments` added to the open call `index`, as a delta."""
        if not arguments:
            return []
        output_index, call = self._calls[index]
        call.function.arguments += arguments
        return [
            self._event(
                "response.function_call_arguments.delta",
                item_id=self._item_id("fc", output_index),
                output_index=output_index,
                delta=arguments,
            )
        ]

    def _open_call_unfinished(self) -> bool:
        return any(not _whole_json(call.function.arguments) for _, call in self._calls.values())

    def _release_held(self, whole_only: bool = False) -> list[dict[str, Any]]:
        """Opens the held calls in order, each with what it has written so far (`whole_only`:
        as long as the call before it is whole)."""
        out: list[dict[str, Any]] = []
        while self._held and not (whole_only and self._open_call_unfinished()):
            index = next(iter(self._held))
            call = self._held.pop(index)
            # added with no arguments, as every call is: what it wrote follows as a delta
            arguments, call.function.arguments = call.function.arguments, ""
            out += self._open_call(index, call)
            out += self._write_arguments(index, arguments)
        return out

    def _late_piece(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        """A piece of a call already closed (an upstream that went back to it): its arguments
        join the call in the final response; no event follows its `done`."""
        output_index, call = self._closed_calls[delta.index]
        call.function.arguments += delta.arguments or ""
        status = self._done[output_index]["status"]
        self._done[output_index] = _function_call(self._item_id("fc", output_index), call, status)
        return []

    def _close_all(self, last_status: str) -> list[dict[str, Any]]:
        """Closes the open items; the last one opened ends with `last_status`."""
        # Neither text nor a call came: the answer is an empty message.
        out = self._open_message() if self._items_opened == 0 else self._release_held()
        # One item is open at a time: opening one closed the one before.
        return out + self._close_message(last_status) + self._close_calls(last_status)

    def _close_calls(self, status: str = "completed") -> list[dict[str, Any]]:
        """Closes the open call (the last item opened) with `status`."""
        out: list[dict[str, Any]] = []
        for index, (output_index, call) in sorted(self._calls.items(), key=lambda p: p[1][0]):
            item = _function_call(self._item_id("fc", output_index), call, status)
            self._done[output_index] = item
            self._closed_calls[index] = (output_index, call)
            out += [
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=output_index,
                    arguments=call.function.arguments,
                ),
                self._event("response.output_item.done", output_index=output_index, item=item),
            ]
        self._calls = {}
        return out

    def _next_output_index(self) -> int:
        self._items_opened += 1
        return self._items_opened - 1

    def _text_position(self) -> dict[str, Any]:
        item_id = self._item_id("msg", self._text_index)
        return {"item_id": item_id, "output_index": self._text_index, "content_index": 0}

    def _item_id(self, prefix: str, output_index: int) -> str:
        return f"{prefix}_{self._id}_{output_index}"

    def _snapshot(self, finish_reason: str | None, usage: Usage | None) -> dict[str, Any]:
        output = [self._done[index] for index in sorted(self._done)]
        return _response(
            self._request,
            self._route,
            self._id,
            self._created_at,  # one Response: the same in every event
            self._citations,
            output,
            finish_reason,
            usage,
            self._stored,
        )

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event
