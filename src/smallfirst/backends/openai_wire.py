"""What OpenAI-compatible upstreams answer, read as servers other than OpenAI's write it.

Tolerated: content as a list of parts (Mistral), tool calls without `index` (Gemini's OpenAI
endpoint) or with their arguments as an object, usage with null counts, SSE events spread
over several `data:` lines or ended by CR alone, `[DONE]` without a finish reason, a
connection dropped after every answer finished, and a whole JSON answer to a stream request
(a server or proxy that ignores `stream`). What cannot be read raises one of `UNREADABLE`,
and an answer (or one event of a stream) over its model's `max_answer_bytes` raises
AnswerTooLarge once read that far: the backend turns both into a 502 that the fallback chain
and the circuit breaker see.
Half a surrogate pair escaped in a string (`"\\ud800"`: JSON, but no character) reads as
U+FFFD, as a local model's bytes that are not UTF-8 do; a pair cut between two stream events
is joined.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic

from smallfirst.completions import (
    Chunk,
    Completion,
    TokenLogprob,
    ToolCallDelta,
    TopLogprob,
    Usage,
    finish_reason_of,
)
from smallfirst.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    QueueFull,
    SmallfirstError,
    UpstreamError,
    UpstreamQuotaSpent,
)
from smallfirst.surrogates import (
    REPLACEMENT,
    SplitPairs,
    loads_replacing_surrogates,
    may_hold_surrogates,
    replaced_surrogates,
)
from smallfirst.types import FunctionCall, ToolCall

log = logging.getLogger("smallfirst.backends")
CLIENT_ERROR_STATUSES = {400, 413, 422}
LLAMA_SERVER_CONTEXT_TYPE = "exceed_context_size_error"
OPENAI_CONTEXT_WORDING = "This model's maximum context length is"
# What reading an answer of the wrong shape raises (RecursionError: JSON nested too deep).
UNREADABLE = (ValueError, KeyError, IndexError, TypeError, RecursionError)
USAGE_COUNTS = ("prompt_tokens", "completion_tokens")
FAILED_FINISH = "error"  # OpenRouter's finish reason for an answer its provider broke off
_LINE_END = re.compile(rb"\r\n|\r|\n")


def completion_of(data: Any, body: dict[str, Any], model_id: str) -> Completion:
    """A whole answer's first choice (chat's `message` or a text completion's `text`)."""
    _raise_told_error(data, model_id)
    choice = _object(data["choices"][0])
    _raise_failed_choice(choice, model_id)
    if "message" in choice:
        message = _object(choice["message"])
        text, tool_calls = content_text(message.get("content")), tool_calls_of(message)
        refusal, reasoning = _side_texts(message)
    else:
        text, tool_calls, (refusal, reasoning) = content_text(choice["text"]), None, ("", "")
    arguments = "".join(call.function.arguments for call in tool_calls or [])
    return Completion(
        text=text,
        finish_reason=finish_reason_of(choice.get("finish_reason")),
        usage=usage_of(data.get("usage"), body, len(text + refusal + reasoning + arguments)),
        logprobs=logprobs_of(choice.get("logprobs")),
        tool_calls=tool_calls,
        refusal=refusal or None,
        reasoning=reasoning or None,
        **served_by(data),
    )


class StreamReader:
    """One upstream stream's events as chunks, and what its end means for each of the `n`
    answers asked for. An answer's finish chunk comes as soon as the upstream finishes it;
    the usage of all comes last, in a chunk of its own, once the stream ends (an upstream
    sends it after the finishes, with `stream_options.include_usage`: held for it, the finish
    reached the client as late as the usage did)."""

    def __init__(self, model_id: str, n: int) -> None:
        self._model_id = model_id
        self._n = n
        self._seen: set[int] = set()  # answers the upstream sent anything of
        self._finishes: dict[int, str] = {}
        self._told: set[int] = set()  # answers whose finish chunk was given
        self._usage: Any = None  # the last usage the upstream sent, read at the end
        # What the answers wrote, counted for a usage the upstream does not send: a count,
        # not the text (a stream's length is not bounded).
        self._written_chars = 0
        self._calls: dict[int, _CallIndexes] = {}
        self._pairs: SplitPairs[_TextKey] = SplitPairs()
        self._served: dict[str, str | None] = {}  # `served_by` as the events say it

    @property
    def all_finished(self) -> bool:
        return len(self._finishes) == self._n

    @property
    def began(self) -> bool:
        """Whether the upstream sent any of an answer (it bills the call then)."""
        return bool(self._seen)

    def chunks(self, payload: str) -> list[Chunk]:
        data = json.loads(payload)
        if self._pairs.holding or may_hold_surrogates(payload):
            _join_split_pairs(data, self._pairs)
            data = replaced_surrogates(data)
        data = _object(data)
        _raise_told_error(data, self._model_id)
        if data.get("usage"):
            self._usage = data["usage"]
        self._served = served_by(data) | {k: v for k, v in self._served.items() if v}
        chunks = [chunk for choice in data.get("choices") or [] for chunk in self._chunks(choice)]
        return [chunk.model_copy(update=self._served) for chunk in chunks]

    def ending(self, body: dict[str, Any], *, done: bool) -> list[Chunk]:
        """The finish chunks of the answers not yet finished, then the usage of all; an
        UpstreamError when an answer is missing or unfinished. `done`: the upstream sent
        `[DONE]`, which says the answers it wrote are whole (some servers send no finish
        reason before it)."""
        if done:
            for index in self._seen - self._finishes.keys():
                self._finishes[index] = "stop"
        if not self._seen or len(self._finishes) < len(self._seen):
            raise UpstreamError(f"{self._model_id}: upstream stream ended without finishing")
        if len(self._seen) < self._n:
            raise UpstreamError(
                f"{self._model_id}: upstream returned {len(self._seen)} of {self._n} choices"
                " (does it support n?)"
            )
        finishes = [chunk for index in range(self._n) for chunk in self._finished(index)]
        usage = usage_of(self._usage, body, self._written_chars)
        last = Chunk(index=self._n - 1, usage=usage)
        return [chunk.model_copy(update=self._served) for chunk in [*finishes, last]]

    def _finished(self, index: int) -> list[Chunk]:
        """Answer `index`'s finish chunk, after a U+FFFD for each half of a pair it ended
        without the other half of; none if it was given already."""
        if index in self._told:
            return []
        self._told.add(index)
        chunks = []
        for _, field, call in self._pairs.unpaired(lambda key: key[0] == index):
            if call is not None:
                calls = [ToolCallDelta(index=call, arguments=REPLACEMENT)]
                chunks.append(Chunk(index=index, tool_calls=calls))
            else:
                chunks.append(
                    Chunk(index=index).model_copy(update={_CHUNK_FIELDS[field]: REPLACEMENT})
                )
            self._written_chars += len(REPLACEMENT)
        finish = finish_reason_of(self._finishes[index])
        return [*chunks, Chunk(index=index, finish_reason=finish)]

    def _chunks(self, choice: Any) -> list[Chunk]:
        """A choice's piece of its answer, if it has any, and its finish chunk if it ends it."""
        index = self._choice_index(_object(choice))
        _raise_failed_choice(choice, self._model_id)
        delta = _object(choice.get("delta") or {})
        text = content_text(delta.get("content") if "delta" in choice else choice.get("text"))
        refusal, reasoning = _side_texts(delta)
        calls = self._calls.setdefault(index, _CallIndexes()).deltas(delta.get("tool_calls"))
        logprobs = logprobs_of(choice.get("logprobs"))
        # Only a choice read whole counts: an unreadable last event is no finish.
        self._seen.add(index)
        chunks = []
        if text or refusal or reasoning or logprobs or calls:
            arguments = sum(len(call.arguments) for call in calls or [])
            self._written_chars += len(text) + len(refusal) + len(reasoning) + arguments
            chunks.append(
                Chunk(
                    index=index,
                    text=text,
                    logprobs=logprobs,
                    tool_calls=calls,
                    refusal=refusal,
                    reasoning=reasoning,
                )
            )
        if choice.get("finish_reason") and index not in self._finishes:
            self._finishes[index] = choice["finish_reason"]
            chunks += self._finished(index)
        return chunks

    def _choice_index(self, choice: dict[str, Any]) -> int:
        index = choice.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < self._n:
            raise UpstreamError(f"{self._model_id}: upstream sent choice {index!r} of {self._n}")
        return index


# A streamed text: its choice's index, its field, and the index of the call it is arguments of
_TextKey = tuple[int, str, int | None]
# A streamed choice's texts (a text completion's `text`, the others in `delta`) as Chunk fields
_CHUNK_FIELDS = {
    "text": "text",
    "content": "text",
    "refusal": "refusal",
    "reasoning_content": "reasoning",
}


def _join_split_pairs(data: Any, pairs: SplitPairs[_TextKey]) -> None:
    """Each streamed text of `data`'s choices (arguments of tool calls too) joined by `pairs`
    to the same text's pieces before it, in place."""
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict) or not isinstance(choice.get("index", 0), int):
            continue
        index, delta = choice.get("index", 0), choice.get("delta")
        texts: list[tuple[dict[str, Any], str, int | None]] = [(choice, "text", None)]
        if isinstance(delta, dict):
            texts += [(delta, field, None) for field in _CHUNK_FIELDS if field != "text"]
            calls = delta.get("tool_calls")
            for place, call in enumerate(calls if isinstance(calls, list) else []):
                function = call.get("function") if isinstance(call, dict) else None
                call_index = call.get("index", place) if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(call_index, int):
                    texts.append((function, "arguments", call_index))
        for holder, field, call_index in texts:
            if isinstance(holder.get(field), str):
                key = (index, field, call_index)
                holder[field] = pairs.join(key, holder[field])


class AnswerTooLarge(Exception):
    """An upstream's answer read whole, or one event of its stream, went past its model's
    `max_answer_bytes`: reading stopped there."""


async def whole_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, counted as it arrives and given up on past `max_bytes` (aiohttp's `read`
    holds any size: a 200 MB answer took 570 MB more of the gateway's memory)."""
    blocks: list[bytes] = []
    size = 0
    async for block in response.content.iter_any():
        size += len(block)
        if size > max_bytes:
            raise AnswerTooLarge
        blocks.append(block)
    return b"".join(blocks)


async def stream_payloads(response: aiohttp.ClientResponse, max_bytes: int) -> AsyncIterator[str]:
    """The data of each event of a streamed answer, none over `max_bytes`. An upstream that
    ignored `stream` and answered with one JSON object reads as that answer in one event,
    then `[DONE]`."""
    if response.content_type != "application/json":
        async for payload in _sse_payloads(response.content.iter_any(), max_bytes):
            yield payload
        return
    raw = await whole_body(response, max_bytes)
    if not raw.lstrip().startswith(b"{"):  # events labelled as JSON (some proxies do)
        async for payload in _sse_payloads(_blocks(raw), max_bytes):
            yield payload
        return
    yield _as_stream_event(raw)
    yield "[DONE]"


def _as_stream_event(raw: bytes) -> str:
    """A whole answer as a stream event: each chat choice's `message` is its delta."""
    data = _object(loads_replacing_surrogates(raw))
    choices = [
        {**choice, "delta": choice["message"]} if "message" in _object(choice) else choice
        for choice in data.get("choices") or []
    ]
    return json.dumps({**data, "choices": choices})


async def _blocks(raw: bytes) -> AsyncIterator[bytes]:
    yield raw


async def _sse_payloads(blocks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[str]:
    """The data of each server-sent event, however the bytes were chunked: an event's `data:`
    lines joined with "\\n", lines ended by CRLF, LF or CR (the SSE spec's). Lines are split
    here rather than with aiohttp's readline, which caps a line at 64 KiB (a chunk with many
    top_logprobs can be longer). Each block is scanned once, a line longer than a block kept
    in pieces: joined and scanned again with each block, a 16 MB line in 16 KiB blocks took
    30 s of CPU, the answer's first byte waiting. What an event holds (its data lines and
    the line not yet ended, as sent) is counted with each block: past `max_bytes`,
    AnswerTooLarge."""
    pieces: list[bytes] = []  # of the line not yet ended
    data: list[bytes] = []
    pieces_bytes = data_bytes = 0  # the bytes of `pieces`, and of the lines `data` came from
    after_cr = False  # the last block ended with CR: an LF starting the next is its pair
    async for block in blocks:
        if after_cr and block.startswith(b"\n"):
            block = block[1:]
        after_cr = block.endswith(b"\r")
        *ended, rest = _LINE_END.split(block)
        for end in ended:
            line = b"".join([*pieces, end])
            pieces.clear()
            pieces_bytes = 0
            if line:
                fields = _data_field(line)
                data += fields
                data_bytes += len(line) if fields else 0
                continue
            if event := b"\n".join(data).decode():  # a blank line ends the event
                yield event
            data, data_bytes = [], 0
        if rest:
            pieces.append(rest)
            pieces_bytes += len(rest)
        if pieces_bytes + data_bytes > max_bytes:
            raise AnswerTooLarge
    data += _data_field(b"".join(pieces))
    if event := b"\n".join(data).decode():  # a last event without its blank line
        yield event


def _data_field(line: bytes) -> list[bytes]:
    return [line[5:].strip()] if line.startswith(b"data:") else []


def served_by(answer: dict[str, Any]) -> dict[str, str | None]:
    """An answer's (or event's) `system_fingerprint` and `service_tier`, where given as text."""
    return {
        name: value if isinstance(value := answer.get(name), str) else None
        for name in ("system_fingerprint", "service_tier")
    }


def content_text(content: Any) -> str:
    """A message's `content`: text, null, or a list of parts whose text parts are joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [_object(part) for part in content]
        return "".join(_text(part.get("text")) for part in parts if part.get("type") == "text")
    raise TypeError(f"content is a {type(content).__name__}")


def _side_texts(message: dict[str, Any]) -> tuple[str, str]:
    """A message's or delta's refusal and reasoning ("" when it has none)."""
    return _text(message.get("refusal") or ""), _text(message.get("reasoning_content") or "")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} where text was expected")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__} where an object was expected")
    return value


def usage_of(raw: Any, body: dict[str, Any], written_chars: int) -> Usage:
    """The upstream's usage; a count it does not give (missing, null) is estimated at 4
    characters per token (documented, `Usage.estimated`), of the prompt and of the
    `written_chars` characters it wrote, and all of them when one is no count (a text, a
    negative number, one past the request log's integers: `TokenCount`)."""
    prompt = json.dumps(body.get("messages") or body.get("prompt") or "")
    estimate = Usage.estimated_from_lengths(len(prompt), written_chars)
    if not isinstance(raw, dict) or all(raw.get(name) is None for name in USAGE_COUNTS):
        return estimate
    missing = {name: getattr(estimate, name) for name in USAGE_COUNTS if raw.get(name) is None}
    try:
        return Usage.model_validate({**raw, **missing})
    except pydantic.ValidationError:
        return estimate


def tool_calls_of(message: dict[str, Any]) -> list[ToolCall] | None:
    """`message.tool_calls`, read for the fields OpenAI defines: servers add their own (an
    `index`, say), and some send the arguments as an object rather than JSON text."""
    raw = message.get("tool_calls")
    if not raw:
        return None
    calls = []
    for number, item in enumerate(raw):
        function = item["function"]
        calls.append(
            ToolCall(
                id=item.get("id") or f"call_{number}",
                # no arguments: some servers' way to say "none"; "" is a call cut off
                function=FunctionCall(
                    name=function["name"], arguments=_arguments(function, missing="{}")
                ),
            )
        )
    return calls


def _arguments(function: dict[str, Any], *, missing: str) -> str:
    arguments = function.get("arguments")
    if arguments is None:
        return missing
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


class _CallIndexes:
    """Streamed `delta.tool_calls` (`{index, id?, type?, function: {name?, arguments?}}`) of
    one answer. `index` tells calls apart; a piece without one (Gemini's OpenAI endpoint sends
    whole calls so) belongs to the call an earlier piece gave its id, else a new id or a
    function name is the next call (given an id if it has none); a piece without any of them
    continues the latest call, or, among several in one delta, the call of its place in the
    list. A call's id and name go to the client once, as OpenAI sends them: an upstream that
    repeats them in each piece (llama.cpp's server before May 2025) had OpenAI's SDK join them
    into "call_1call_1" and a name written once per piece."""

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._next = 0
        self._latest = 0
        self._told: dict[int, tuple[Any, Any]] = {}  # each call's id and name, as first told

    def deltas(self, raw: Any) -> list[ToolCallDelta] | None:
        if not raw:
            return None
        places = range(len(raw)) if len(raw) > 1 else [None]
        return [self._delta(_object(item), place) for place, item in zip(places, raw, strict=True)]

    def _delta(self, item: dict[str, Any], place: int | None) -> ToolCallDelta:
        function = _object(item.get("function") or {})
        call_id, name = item.get("id"), function.get("name")
        index = self._index(item.get("index"), call_id, place, named=bool(name))
        told_id, told_name = self._told.get(index, (None, None))
        call_id = None if call_id == told_id else call_id
        name = None if name == told_name else name
        if name and not call_id and told_id is None:  # a call's first piece: the client
            call_id = f"call_{index}"  # needs an id to answer it
        self._told[index] = (told_id or call_id, told_name or name)
        return ToolCallDelta(
            index=index, id=call_id, name=name, arguments=_arguments(function, missing="")
        )

    def _index(self, told: Any, call_id: Any, place: int | None, *, named: bool) -> int:
        if isinstance(told, int):
            index = told
        elif call_id in self._by_id:
            index = self._by_id[call_id]
        elif call_id or (named and place is None):  # a name starts a call: pieces go on
            index = self._next  # without one
        else:
            index = self._latest if place is None else place
        if call_id:
            self._by_id.setdefault(call_id, index)
        self._next, self._latest = max(self._next, index + 1), index
        return index


def logprobs_of(raw: Any) -> list[TokenLogprob] | None:
    """Chat (`content: [...]`) and legacy completion (`tokens`, `token_logprobs`) shapes."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("content"), list):
        return [
            TokenLogprob(
                token=item["token"],
                logprob=item["logprob"],
                utf8=item.get("bytes"),
                top=[
                    TopLogprob(token=t["token"], logprob=t["logprob"], utf8=t.get("bytes"))
                    for t in item.get("top_logprobs") or []
                ],
            )
            for item in raw["content"]
        ]
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = raw.get("top_logprobs") or [None] * len(tokens)
        offsets = raw.get("text_offset")
        if not isinstance(offsets, list) or len(offsets) < len(tokens):
            offsets = [None] * len(tokens)
        return [
            TokenLogprob(
                token=token,
                logprob=value,
                top=[TopLogprob(token=k, logprob=v) for k, v in _object(top or {}).items()],
                text_offset=offset,
            )
            for token, value, top, offset in zip(tokens, values, tops, offsets, strict=False)
        ]
    return None


def upstream_error(model_id: str, status: int | None, told: Any, message: str) -> SmallfirstError:
    """An upstream's error as ours. `told`: its `error` object; `status` None for one sent
    with a 200 (as an answer, or as an event of a stream that had started). Its message,
    which may quote the request, is only for the client that sent it."""
    error = _as_ours(model_id, status, told, message)
    error.summary = f"{model_id}: upstream " + (
        "sent an error" if status is None else f"answered {status}"
    )
    return error


def _as_ours(model_id: str, status: int | None, told: Any, message: str) -> SmallfirstError:
    code, param = _code_and_param(told)
    kind = told.get("type") if isinstance(told, dict) else None
    if UpstreamQuotaSpent.code in (code, kind):
        return UpstreamQuotaSpent(f"{model_id}: {message}")
    if status in CLIENT_ERROR_STATUSES:  # its code and param say what to change, as sent
        if _context_exceeded(code, kind, message):  # a prompt too long goes up, or is cut
            return ContextLengthExceeded(f"{model_id}: {message}", param=param)
        return InvalidRequest(f"{model_id}: {message}", param=param, code=code)
    if status == 401:  # OpenAI's quotes part of the key ("sk-pr****wxyz"): the operator's
        log.warning("%s: upstream answered 401: %s", model_id, message)
        return UpstreamError(
            f"{model_id}: upstream answered 401: it refused this gateway's credentials"
            " (the model's api_key; its message is in the gateway's log)"
        )
    if status == 429 or kind == "rate_limit_error" or code == "rate_limit_exceeded":
        return QueueFull(
            f"{model_id}: upstream is rate limiting: {message}", code="upstream_rate_limited"
        )
    if status is None:
        return UpstreamError(f"{model_id}: upstream sent an error: {message}")
    return UpstreamError(f"{model_id}: upstream answered {status}: {message}")


def told_error(body: Any) -> tuple[dict[str, Any], str]:
    """An error answer's error object and message: OpenAI's `{"error": {...}}`, an error as
    text (`{"error": "..."}`), vLLM's flat `{"object": "error", "message": ...}` or FastAPI's
    `{"detail": "..."}` (the client read their JSON cut at 200 characters, vLLM's "maximum
    context length" message without its end)."""
    told = _object(body).get("error", body)
    if isinstance(told, str):
        return {}, told
    told = _object(told)
    return told, _text(told["message"] if "message" in told else told["detail"])


def _raise_told_error(data: Any, model_id: str) -> None:
    """An `{"error": {...}}` in place of an answer (or as an event of a stream)."""
    if isinstance(data, dict) and data.get("error") is not None:
        told = data["error"]
        message = told.get("message") if isinstance(told, dict) else told
        raise upstream_error(model_id, None, told, str(message))


def _raise_failed_choice(choice: dict[str, Any], model_id: str) -> None:
    """A choice that ended with an error rather than whole: OpenRouter's `finish_reason:
    "error"`, its error object in the choice (it read as a whole answer, "stop")."""
    if choice.get("finish_reason") == FAILED_FINISH or choice.get("error") is not None:
        failed = {"error": choice.get("error") or "the answer ended with an error"}
        _raise_told_error(failed, model_id)


def _context_exceeded(code: str | None, kind: str | None, message: str) -> bool:
    """Whether an upstream's 400 says the prompt does not fit its context: OpenAI's code,
    llama.cpp's server's type, or OpenAI's wording, which vLLM's error (code 400) copies."""
    return (
        code == ContextLengthExceeded.code
        or kind == LLAMA_SERVER_CONTEXT_TYPE
        or message.startswith(OPENAI_CONTEXT_WORDING)
    )


def _code_and_param(error: Any) -> tuple[str | None, str | None]:
    """An upstream error's code and param, where it gives them as text."""
    if not isinstance(error, dict):
        return None, None
    code, param = error.get("code"), error.get("param")
    return (
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )
