"""The remote backend against upstreams that answer in their own ways (misbehaving, or merely
not OpenAI): odd bodies, stream ends, tool calls without index, fields and status headers."""

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from smallfirst.answers import RouteInfo
from smallfirst.backends import openai_wire
from smallfirst.backends.openai_compat import _retry_after_s
from smallfirst.backends.openai_wire import _LINE_END
from smallfirst.completions import Chunk, ModelInfo, join_tool_call_deltas
from smallfirst.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    QueueFull,
    UpstreamError,
    UpstreamQuotaSpent,
)
from smallfirst.server.render import ChunkRenderer, completion_body
from smallfirst.types import ChatRequest, TextRequest
from tests.unit.test_openai_compat import (
    ANSWER,
    REQUEST,
    TOOL_REQUEST,
    Handler,
    _answered,
    finished,
    sse,
    upstream,
)

STREAM_REQUEST = REQUEST.model_copy(update={"stream": True})


def answer_with(**message: Any) -> dict[str, Any]:
    choice = {"message": {"role": "assistant", **message}, "finish_reason": "stop"}
    return {**ANSWER, "choices": [choice]}


def answering(body: object) -> Handler:
    """Answers `body` as JSON; bytes as they are (JSON that json.dumps would not write)."""

    async def handle(request: web.Request) -> web.Response:
        if isinstance(body, bytes):
            return web.Response(body=body, content_type="application/json")
        return web.json_response(body)

    return handle


def streaming(raw: bytes) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=raw, headers={"content-type": "text/event-stream"})

    return handle


async def streamed(raw: bytes, request: ChatRequest = STREAM_REQUEST) -> list[Chunk]:
    async with upstream(streaming(raw)) as backend:
        return [chunk async for chunk in backend.stream(request)]


def delta(finish: str | None = None, index: int = 0, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


DONE = b"data: [DONE]\n\n"


LEGACY_TOPS_AS_LISTS = {"tokens": ["hi"], "token_logprobs": [-0.1], "top_logprobs": [["hi", -0.1]]}
NESTED_TOO_DEEP = b'{"choices": [{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"


@pytest.mark.parametrize(
    "body",
    [
        answer_with() | {"choices": [{"message": None, "finish_reason": "stop"}]},
        answer_with(content=42),
        answer_with(content=[{"type": "text", "text": 7}]),
        {"choices": [{"text": "hi", "logprobs": LEGACY_TOPS_AS_LISTS, "finish_reason": "stop"}]},
        NESTED_TOO_DEEP,
    ],
    ids=[
        "message null",
        "content a number",
        "a part's text a number",
        "top_logprobs entries as lists",  # was an AttributeError: a 500 and no fallback
        "nested too deep",  # was a RecursionError
    ],
)
async def test_an_answer_of_the_wrong_shape_is_a_malformed_502(body: object) -> None:
    async with upstream(answering(body)) as backend:
        with pytest.raises(UpstreamError, match="malformed upstream answer"):
            await backend.complete(REQUEST)


async def test_a_streamed_event_of_the_wrong_shape_is_a_502() -> None:
    """Also the last one, with the finish reason: the stream ended as if whole, with nothing."""
    choice = {"text": "hi", "logprobs": LEGACY_TOPS_AS_LISTS, "finish_reason": "stop"}
    with pytest.raises(UpstreamError, match="malformed upstream stream"):
        await streamed(sse([{"choices": [choice]}]) + DONE)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unreadable_answer_is_counted_malformed_streamed_or_not(stream: bool) -> None:
    """A stream event that was not JSON was counted (and told) as a connection that broke."""
    raw = sse([delta(content="hel")]) + b"data: {not json\n\n" + DONE
    handle = streaming(raw) if stream else answering(b'{"choices": [{not json')
    async with upstream(handle) as backend:
        answer = backend.stream(STREAM_REQUEST) if stream else backend.complete(REQUEST)
        with pytest.raises(UpstreamError, match="malformed upstream") as unreadable:
            await _answered(answer)
        assert backend.upstream_errors() == {"malformed": 1}
    assert unreadable.value.received == stream  # a stream that began is billed


async def test_content_as_a_list_of_parts_is_joined_as_mistral_sends_it() -> None:
    parts = [{"type": "text", "text": "par"}, {"type": "image_url"}, {"type": "text", "text": "ts"}]
    async with upstream(answering(answer_with(content=parts))) as backend:
        assert (await backend.complete(REQUEST)).text == "parts"


async def test_null_usage_counts_are_estimated() -> None:
    partly = {**answer_with(content="x" * 40), "usage": {"prompt_tokens": 3}}
    nulls = {**partly, "usage": {"prompt_tokens": None, "completion_tokens": None}}
    async with upstream(answering(partly)) as backend:
        usage = (await backend.complete(REQUEST)).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 10)
    async with upstream(answering(nulls)) as backend:
        usage = (await backend.complete(REQUEST)).usage
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == 10


async def test_a_null_usage_after_a_streamed_answer_is_estimated() -> None:
    """It turned the answer delivered into "broke off"."""
    null_usage = {"choices": [], "usage": {"prompt_tokens": None, "completion_tokens": 2}}
    chunks = await streamed(sse([delta("stop", content="Hello")]) + sse([null_usage]) + DONE)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert chunks[-1].usage.prompt_tokens > 0


CACHED_NEGATIVE = {"prompt_tokens_details": {"cached_tokens": -1}}


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 7, "completion_tokens": -2},
        {"prompt_tokens": 7, "completion_tokens": 2, **CACHED_NEGATIVE},
        {"prompt_tokens": 2**64, "completion_tokens": 2},
    ],
)
async def test_a_usage_count_that_is_no_count_is_estimated(usage: dict[str, Any]) -> None:
    """It was taken as it came: a negative count booked a negative cost in the request log,
    and /metrics refused it (a counter only goes up), which made the answer a 500; a count
    past SQLite's integers stopped the log's writer for good."""
    async with upstream(answering({**answer_with(content="x" * 40), "usage": usage})) as backend:
        whole = (await backend.complete(REQUEST)).usage
    ending = sse([delta("stop", content="x" * 40)]) + sse([{"choices": [], "usage": usage}])
    last = (await streamed(ending + DONE))[-1].usage
    assert last is not None
    for counted in (whole, last):
        assert counted.completion_tokens == 10  # 40 characters written
        assert counted.prompt_tokens > 0
        assert counted.cached_tokens == 0


async def test_a_whole_json_answer_to_a_stream_request_streams_as_one_piece() -> None:
    """A server or proxy that ignores `stream` answers with JSON: it was a 502."""
    call = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = answer_with(content="hello", tool_calls=[call])
    async with upstream(answering(body)) as backend:
        chunks = [chunk async for chunk in backend.stream(STREAM_REQUEST)]
    assert "".join(chunk.text for chunk in chunks) == "hello"
    calls = join_tool_call_deltas([d for chunk in chunks for d in chunk.tool_calls or []])
    assert [(c.id, c.function.name) for c in calls or []] == [("a", "f")]
    assert finished(chunks) == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 1)


async def test_a_whole_text_completion_to_a_stream_request_streams_as_one_piece() -> None:
    body = {"choices": [{"index": 0, "text": "four", "finish_reason": "length"}]}
    text_request = TextRequest(model="cloud", prompt="2+2=", stream=True)
    async with upstream(answering(body)) as backend:
        chunks = [chunk async for chunk in backend.stream(text_request)]
    assert ["".join(c.text for c in chunks), finished(chunks)] == ["four", "length"]


async def test_events_labelled_as_json_are_read_as_events() -> None:
    events = sse([delta(content="hel"), delta("stop", content="lo")]) + DONE

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=events, content_type="application/json")

    async with upstream(handle) as backend:
        chunks = [chunk async for chunk in backend.stream(STREAM_REQUEST)]
    assert "".join(chunk.text for chunk in chunks) == "hello"


async def test_an_error_object_to_a_stream_request_is_the_upstream_error() -> None:
    body = {"error": {"message": "overloaded", "type": "server_error"}}
    async with upstream(answering(body)) as backend:
        with pytest.raises(UpstreamError, match="overloaded"):
            _ = [chunk async for chunk in backend.stream(STREAM_REQUEST)]


async def test_streamed_tool_calls_without_index_are_told_apart() -> None:
    """Gemini's OpenAI endpoint sends whole calls in one delta without index: they merged."""
    weather = {"id": "a", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    time_call = {"id": "b", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}
    opened = {"id": "c", "function": {"name": "get_weather", "arguments": ""}}  # then pieces
    more = {"function": {"arguments": '{"city": "Rome"}'}}
    events = [
        delta(tool_calls=[weather, time_call]),
        delta(tool_calls=[opened]),
        delta(tool_calls=[more]),
        delta("tool_calls"),
    ]
    chunks = await streamed(sse(events) + DONE, TOOL_REQUEST.model_copy(update={"stream": True}))
    calls = join_tool_call_deltas([d for chunk in chunks for d in chunk.tool_calls or []])
    assert [(c.id, c.function.name, c.function.arguments) for c in calls or []] == [
        ("a", "get_weather", '{"city": "Oslo"}'),
        ("b", "get_time", '{"tz": "CET"}'),
        ("c", "get_weather", '{"city": "Rome"}'),
    ]


async def test_streamed_calls_with_neither_index_nor_id_are_told_apart_by_their_names() -> None:
    """Two whole calls in two deltas, no index, no id: they were one call of both arguments."""
    oslo = {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    rome = {"function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
    events = [delta(tool_calls=[oslo]), delta(tool_calls=[rome]), delta("tool_calls")]
    chunks = await streamed(sse(events) + DONE, TOOL_REQUEST.model_copy(update={"stream": True}))
    calls = join_tool_call_deltas([d for chunk in chunks for d in chunk.tool_calls or []])
    assert [(c.id, c.function.arguments) for c in calls or []] == [
        ("call_0", '{"city": "Oslo"}'),
        ("call_1", '{"city": "Rome"}'),
    ]


async def test_a_calls_id_and_name_repeated_in_each_piece_are_passed_on_once() -> None:
    """llama.cpp's server repeated them (SGLang opened with an empty name): OpenAI's SDK joins
    every piece's, and read the call as "aaa" named "get_weatherget_weatherget_weather"."""
    opened = {"index": 0, "id": "a", "type": "function", "function": {"name": "get_weather"}}
    pieces = ['{"city": ', '"Oslo"}']
    unnamed = {"index": 1, "id": "b", "function": {"name": "", "arguments": ""}}
    named = {"index": 1, "id": "b", "function": {"name": "get_time", "arguments": "{}"}}
    events = [
        delta(tool_calls=[{**opened, "function": {**opened["function"], "arguments": part}}])
        for part in ["", *pieces]
    ]
    events += [delta(tool_calls=[unnamed]), delta(tool_calls=[named]), delta("tool_calls")]
    chunks = await streamed(sse(events) + DONE, TOOL_REQUEST.model_copy(update={"stream": True}))
    told = [(d.index, d.id, d.name) for chunk in chunks for d in chunk.tool_calls or []]
    assert told == [
        (0, "a", "get_weather"),
        (0, None, None),
        (0, None, None),
        (1, "b", ""),
        (1, None, "get_time"),
    ]


async def test_streamed_tool_call_arguments_as_an_object_are_json_text() -> None:
    call = {"index": 0, "id": "a", "function": {"name": "get_weather", "arguments": {"c": 1}}}
    chunks = await streamed(sse([delta(tool_calls=[call]), delta("tool_calls")]) + DONE)
    (piece,) = [d for chunk in chunks for d in chunk.tool_calls or []]
    assert json.loads(piece.arguments) == {"c": 1}


async def test_done_after_the_text_without_a_finish_reason_ends_as_stop() -> None:
    chunks = await streamed(sse([delta(content="Hel"), delta(content="lo")]) + DONE)
    assert "".join(c.text for c in chunks) == "Hello"
    assert finished(chunks) == "stop"


async def test_a_connection_dropped_after_every_finish_ends_the_answer_normally() -> None:
    """Before usage and [DONE]: the answer is whole, its usage estimated."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse([delta(content="x" * 40), delta("stop")]))
        assert request.transport is not None
        request.transport.abort()  # no end of the chunked body
        return response

    async with upstream(handle) as backend:
        chunks = [c async for c in backend.stream(STREAM_REQUEST)]
    assert finished(chunks) == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10


PROVIDER_FAILED = {"code": 502, "message": "Provider disconnected unexpectedly"}


@pytest.mark.parametrize("told", [{}, {"error": PROVIDER_FAILED}])
async def test_an_answer_that_finished_with_an_error_is_the_upstreams_error(
    told: dict[str, Any],
) -> None:
    """OpenRouter ends an answer its provider broke off with `finish_reason: "error"` (its
    error object in the choice): a 200 with the text cut short said "stop"."""
    cut = {"index": 0, "message": {"content": "Hel"}, "finish_reason": "error", **told}
    whole = {**ANSWER, "choices": [cut]}
    events = sse([delta(content="Hel"), {"choices": [{**delta("error")["choices"][0], **told}]}])
    async with upstream(answering(whole)) as backend:
        with pytest.raises(UpstreamError, match="upstream sent an error") as failed:
            await backend.complete(REQUEST)
        assert backend.upstream_errors() == {"error_event": 1}
    with pytest.raises(UpstreamError, match="upstream sent an error") as broke:
        await streamed(events + DONE)
    message = told["error"]["message"] if told else "the answer ended with an error"
    assert message in failed.value.message
    assert message in broke.value.message


@pytest.mark.parametrize(
    ("raw", "billed"),
    [
        (sse([delta(role="assistant", content=""), delta(content="Hel")]), True),
        (b"<html><body>Bad gateway</body></html>", False),
    ],
)
async def test_a_stream_that_ends_unfinished_was_received_once_its_answer_began(
    raw: bytes, billed: bool
) -> None:
    """An answer begun and then ended without a finish or [DONE] (a clean close, not a reset)
    is billed as one that broke off is; a page with no answer in it is not (the prompt of the
    first was not counted)."""
    with pytest.raises(UpstreamError, match="without finishing") as ended:
        await streamed(raw)
    assert ended.value.received is billed


class _CountingLineEnds:
    """`_LINE_END`, counting the bytes it is asked to split."""

    def __init__(self) -> None:
        self.scanned = 0

    def split(self, data: bytes) -> list[bytes]:
        self.scanned += len(data)
        return _LINE_END.split(data)


@pytest.mark.parametrize("block_size", [1, 3, 1024])
async def test_a_long_event_arriving_in_small_blocks_is_scanned_once(
    monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    """Each block is scanned for line ends once, however long its line: a line was joined and
    scanned again with every block that did not end it, and a 16 MB event in 16 KiB blocks
    took 30 s of CPU. CRLF split between two blocks is still one line end."""
    raw = b"data: " + b"x" * 20_000 + b"\r\ndata: y\r\n\r\ndata: [DONE]\r\n\r\n"
    counting = _CountingLineEnds()
    monkeypatch.setattr(openai_wire, "_LINE_END", counting)

    async def blocks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), block_size):
            yield raw[start : start + block_size]

    events = [event async for event in openai_wire._sse_payloads(blocks(), len(raw))]
    assert events == ["x" * 20_000 + "\ny", "[DONE]"]
    assert counting.scanned <= len(raw)


async def test_an_error_event_mid_stream_is_the_upstreams_error() -> None:
    told = {"error": {"message": "The server had an error.", "type": "server_error"}}
    with pytest.raises(UpstreamError, match="The server had an error"):
        await streamed(sse([delta(content="Hel"), told]) + DONE)
    limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    with pytest.raises(QueueFull, match="Rate limit reached") as raised:
        await streamed(b"event: error\n" + sse([limited]))
    assert raised.value.status == 429


async def test_sse_events_over_several_data_lines_or_ended_by_cr_are_read() -> None:
    multi_line = b'data: {"choices": [{"delta": {"content": "Hel"},\ndata: "index": 0}]}\n\n'
    cr_only = sse([delta("stop", content="lo")]).replace(b"\n", b"\r")
    chunks = await streamed(multi_line + b": keep-alive\r\n\r\n" + cr_only + b"data: [DONE]\r\r")
    assert "".join(c.text for c in chunks) == "Hello"
    assert finished(chunks) == "stop"


async def test_only_the_fields_the_client_sent_go_upstream() -> None:
    """Every request carried `logprobs: false`, `n: 1` or `echo: false`: servers that do
    not know them (or refuse logprobs) failed."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.Response(body=sse([delta("stop", content="hi")]) + DONE)

    text_request = TextRequest(model="cloud", prompt="Hi", stream=True)
    async with upstream(handle) as backend:
        _ = [c async for c in backend.stream(STREAM_REQUEST)]
        _ = [c async for c in backend.stream(text_request)]
    assert not {"logprobs", "n", "echo"} & (seen[0].keys() | seen[1].keys())
    assert seen[0]["stream_options"] == {"include_usage": True}


async def test_stream_options_refused_are_left_out_from_then_on() -> None:
    """Older Azure api-versions refuse them; usage is estimated instead."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(body := await request.json())
        if "stream_options" in body:
            told = {"message": "Unrecognized request argument supplied: stream_options"}
            return web.json_response({"error": told}, status=400)
        return web.Response(body=sse([delta("stop", content="x" * 40)]) + DONE)

    async with upstream(handle) as backend:
        for _ in range(2):
            chunks = [c async for c in backend.stream(STREAM_REQUEST)]
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 10
    assert ["stream_options" in body for body in seen] == [True, False, False]


def failing(
    status: int, retry_after: str, told: dict[str, Any] | None = None
) -> tuple[Handler, list[float]]:
    """An upstream that fails with `status` (then answers, unless it `told` an error of its
    own), and the times it was called."""
    calls: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) > 1 and told is None:
            return web.json_response(ANSWER)
        error = told or {"message": "busy"}
        return web.json_response(
            {"error": error}, status=status, headers={"retry-after": retry_after}
        )

    return handle, calls


CONTEXT_TOO_LONG = (
    "This model's maximum context length is 2048 tokens. However, you requested 2723 tokens"
    " (1699 in the messages, 1024 in the completion). Please reduce the length of the"
    " messages or completion."
)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": CONTEXT_TOO_LONG, "type": "invalid_request_error"}},
        {"object": "error", "message": CONTEXT_TOO_LONG, "type": "BadRequestError", "code": 400},
        {"error": CONTEXT_TOO_LONG},
        {"detail": CONTEXT_TOO_LONG},
    ],
)
async def test_an_error_bodys_message_is_read_in_the_shapes_servers_send(
    body: dict[str, Any],
) -> None:
    """OpenAI's, vLLM's, an error as text, FastAPI's: the client read the last three as
    their JSON, cut at 200 characters."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(body, status=400)

    async with upstream(handle) as backend:
        with pytest.raises(InvalidRequest) as refused:
            await backend.complete(REQUEST)
    assert refused.value.message == f"cloud: {CONTEXT_TOO_LONG}"


LLAMA_SERVER_TOO_LONG = {
    "code": 400,
    "message": "request (4476 tokens) exceeds the available context size (4096 tokens)",
    "type": "exceed_context_size_error",
    "n_prompt_tokens": 4476,
    "n_ctx": 4096,
}


@pytest.mark.parametrize(
    "body",
    [
        {"object": "error", "message": CONTEXT_TOO_LONG, "type": "BadRequestError", "code": 400},
        {"error": {"message": CONTEXT_TOO_LONG, "type": "BadRequestError", "code": 400}},
        {"error": LLAMA_SERVER_TOO_LONG},
    ],
)
async def test_a_prompt_too_long_is_told_so_by_vllm_and_llama_server(body: dict[str, Any]) -> None:
    """Their 400s carry no `context_length_exceeded` code: read as the prompt not fitting, a
    request goes up to a roomier model or is truncated (`truncation: "auto"`) as with OpenAI's."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(body, status=400)

    async with upstream(handle) as backend:
        with pytest.raises(ContextLengthExceeded) as refused:
            await backend.complete(REQUEST)
    assert refused.value.code == "context_length_exceeded"


async def test_a_short_retry_after_is_waited_for() -> None:
    handle, calls = failing(503, "1")
    async with upstream(handle, max_retries=1) as backend:
        assert (await backend.complete(REQUEST)).text == "hello"
    first, second = calls
    assert second - first >= 0.9


@pytest.mark.parametrize("retry_after", ["30", "date"])
async def test_a_long_retry_after_fails_at_once_and_is_passed_on(retry_after: str) -> None:
    if retry_after == "date":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=31), usegmt=True)
    handle, calls = failing(429, retry_after)
    async with upstream(handle, max_retries=2) as backend:
        with pytest.raises(QueueFull) as raised:
            await backend.complete(REQUEST)
    assert len(calls) == 1
    assert raised.value.retry_after_s in (30, 31)


async def test_a_spent_quota_is_not_retried_and_says_so() -> None:
    told = {"message": "You exceeded your current quota.", "type": "insufficient_quota"}
    handle, calls = failing(429, "1", told | {"code": "insufficient_quota"})
    async with upstream(handle, max_retries=2) as backend:
        with pytest.raises(UpstreamQuotaSpent, match="exceeded your current quota") as raised:
            await backend.complete(REQUEST)
    assert len(calls) == 1
    error = raised.value
    assert (error.status, error.error_type, error.code) == (429, *["insufficient_quota"] * 2)


async def test_refusals_and_content_filters_pass_through() -> None:
    refused = answer_with(content=None, refusal="I can't help with that.")
    filtered = {
        **ANSWER,
        "choices": [{"message": {"content": "part"}, "finish_reason": "content_filter"}],
    }
    async with upstream(answering(refused)) as backend:
        answer = await backend.complete(REQUEST)
    assert (answer.text, answer.refusal) == ("", "I can't help with that.")
    async with upstream(answering(filtered)) as backend:
        assert (await backend.complete(REQUEST)).finish_reason == "content_filter"
    events = [delta(refusal="I can't"), delta(refusal=" help"), delta("content_filter")]
    chunks = await streamed(sse(events) + DONE)
    assert "".join(c.refusal for c in chunks) == "I can't help"
    assert finished(chunks) == "content_filter"


async def test_reasoning_content_passes_through_and_counts_when_usage_is_estimated() -> None:
    reasoned = answer_with(content="42", reasoning_content="x" * 40)
    del reasoned["usage"]
    async with upstream(answering(reasoned)) as backend:
        answer = await backend.complete(REQUEST)
    assert (answer.text, answer.reasoning) == ("42", "x" * 40)
    assert answer.usage.completion_tokens == 11  # 42 characters, 4 a token, rounded up
    events = [delta(reasoning_content="Think"), delta(reasoning_content="ing"), delta("stop")]
    chunks = await streamed(sse(events) + DONE)
    assert "".join(c.reasoning for c in chunks) == "Thinking"


@pytest.mark.parametrize(
    "headers", [{"retry-after-ms": "inf"}, {"retry-after-ms": "1e999"}, {"retry-after": "soon"}]
)
def test_a_retry_after_that_says_no_time_is_no_wait(headers: dict[str, str]) -> None:
    assert _retry_after_s(headers) is None  # "inf" ms crashed the error's retry-after


SERVED = {"system_fingerprint": "fp_44709d6fcb", "service_tier": "flex"}


async def test_the_upstreams_fingerprint_and_service_tier_reach_the_client() -> None:
    """They were dropped: `system_fingerprint` null and no `service_tier`, which says how an
    OpenAI request asking for one was processed (and billed)."""
    async with upstream(answering({**ANSWER, **SERVED})) as backend:
        whole = await backend.complete(REQUEST)
    events = [{**delta(content="hi"), **SERVED}, {**delta("stop"), **SERVED}]
    chunks = await streamed(sse(events) + DONE)
    assert (whole.system_fingerprint, whole.service_tier) == ("fp_44709d6fcb", "flex")
    model = ModelInfo(id="cloud", tier="cloud", backend="openai_compat", context_length=100)
    route = RouteInfo(model=model, router="none", reason="asked for by id")
    body = completion_body(REQUEST, [whole], whole.usage, route, "r1")
    assert (body["system_fingerprint"], body["service_tier"]) == ("fp_44709d6fcb", "flex")
    renderer = ChunkRenderer(STREAM_REQUEST, route, "r1")
    rendered = [event for chunk in chunks for event in renderer.events(chunk)]
    assert {(e["system_fingerprint"], e["service_tier"]) for e in rendered} == {
        ("fp_44709d6fcb", "flex")
    }
