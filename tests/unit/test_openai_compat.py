"""The remote backend's protocol handling, against a scripted aiohttp server on loopback.

(Its behaviour against a real second smallfirst server is in tests/integration.)"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from benchmarks.common import free_port

from smallfirst.backends.openai_compat import OpenAICompatBackend
from smallfirst.completions import Chunk, Usage
from smallfirst.config import OpenAICompatModel
from smallfirst.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ShuttingDown,
    UpstreamError,
    UpstreamTimeout,
)
from smallfirst.types import ChatRequest, TextRequest

REQUEST = ChatRequest.model_validate(
    {"model": "cloud", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
)
ANSWER = {
    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 1},
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def upstream(handle: Handler, **config: object) -> AsyncIterator[OpenAICompatBackend]:
    """A backend pointed at a real HTTP server on 127.0.0.1 that answers with `handle`."""
    app = web.Application()
    app.router.add_post("/v1/{path:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    settings = OpenAICompatModel.model_validate(
        {
            "id": "cloud",
            "tier": "cloud",
            "base_url": str(server.make_url("/v1")),
            "remote_model": "gpt-x",
            "backoff_s": 0,
            **config,
        }
    )
    backend = OpenAICompatBackend(settings)
    try:
        yield backend
    finally:
        await backend.aclose()
        await server.close()


async def test_sends_the_remote_model_name_and_parses_the_answer() -> None:
    seen: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.json())
        assert request.path == "/v1/chat/completions"
        return web.json_response(ANSWER)

    async with upstream(handle) as backend:
        result = await backend.complete(REQUEST)
    assert result.text == "hello"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 1)
    assert seen[0]["model"] == "gpt-x"
    assert seen[0]["max_tokens"] == 5
    assert "route" not in seen[0]


async def test_the_upstreams_cached_prompt_tokens_are_passed_on() -> None:
    async def handle(request: web.Request) -> web.Response:
        usage = {
            "prompt_tokens": 1200,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 1024},
        }
        return web.json_response({**ANSWER, "usage": usage})

    async with upstream(handle) as backend:
        result = await backend.complete(REQUEST)
    assert result.usage.as_openai()["prompt_tokens_details"] == {"cached_tokens": 1024}
    assert result.usage.prompt_tokens == 1200


async def test_the_upstreams_reasoning_tokens_are_passed_on() -> None:
    """A reasoning model's usage details read as OpenAI sends them, whole and streamed (they
    were dropped: chat had no `completion_tokens_details`, the Responses API said 0)."""
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0},
    }
    events = [
        {"choices": [{"index": 0, "delta": {"content": "4"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    ]

    async def handle(request: web.Request) -> web.Response:
        if (await request.json())["stream"]:
            return web.Response(body=sse(events) + b"data: [DONE]\n\n")
        return web.json_response({**ANSWER, "usage": usage})

    async with upstream(handle) as backend:
        whole = await backend.complete(REQUEST)
        streamed = [chunk async for chunk in backend.stream(REQUEST)]
    for told in (whole.usage, streamed[-1].usage):
        assert told is not None
        assert told.as_openai()["completion_tokens_details"] == {"reasoning_tokens": 32}
        assert told.completion_tokens == 40


async def test_sends_the_api_key_from_the_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-test")
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response(ANSWER)

    async with upstream(handle, api_key_env="UPSTREAM_KEY") as backend:
        await backend.complete(REQUEST)
    assert seen == ["Bearer sk-test"]


async def test_retries_on_503_then_succeeds() -> None:
    calls = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=503) if calls < 3 else web.json_response(ANSWER)

    async with upstream(handle, max_retries=2) as backend:
        assert (await backend.complete(REQUEST)).text == "hello"
    assert calls == 3


@asynccontextmanager
async def unreachable(**config: object) -> AsyncIterator[OpenAICompatBackend]:
    """A backend pointed at a loopback port that was free a moment ago and has no listener."""
    port = free_port()
    settings = OpenAICompatModel.model_validate(
        {
            "id": "cloud",
            "tier": "cloud",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "max_retries": 1,
            "backoff_s": 0,
            **config,
        }
    )
    backend = OpenAICompatBackend(settings)
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_gives_up_after_retries_with_502_when_nothing_listens() -> None:
    async with unreachable() as backend:
        with pytest.raises(UpstreamError, match="cannot reach upstream"):
            await backend.complete(REQUEST)


async def test_client_errors_are_not_retried_and_keep_the_message() -> None:
    calls = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"error": {"message": "context too long"}}, status=400)

    async with upstream(handle) as backend:
        with pytest.raises(InvalidRequest, match="context too long"):
            await backend.complete(REQUEST)
    assert calls == 1


@pytest.mark.parametrize(
    ("status", "error_class", "ours", "kind"),
    [
        (400, InvalidRequest, 400, "4xx"),
        (413, InvalidRequest, 400, "4xx"),
        (422, InvalidRequest, 400, "4xx"),  # FastAPI's (a vLLM server's) validation error
        (404, UpstreamError, 502, "4xx"),  # not the client's to fix: its model is not there
        (500, UpstreamError, 502, "5xx"),
    ],
)
async def test_an_upstreams_status_is_the_clients_fault_or_the_upstreams(
    status: int, error_class: type[Exception], ours: int, kind: str
) -> None:
    """A request the upstream refused as malformed is the client's 400, and is not asked of
    the next tier; any other failure is the upstream's (502), counted by its status class."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "no"}}, status=status)

    async with upstream(handle, max_retries=0) as backend:
        with pytest.raises(error_class) as raised:
            await backend.complete(REQUEST)
        assert type(raised.value) is error_class
        assert raised.value.status == ours
        assert backend.upstream_errors() == {kind: 1}


async def test_a_refused_key_is_the_operators_to_read_not_the_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told = {"message": "Incorrect API key provided: sk-pr****wxyz.", "code": "invalid_api_key"}

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"error": told}, status=401)

    async with upstream(handle) as backend:
        with pytest.raises(UpstreamError) as raised:
            await backend.complete(REQUEST)
    assert "refused this gateway's credentials" in raised.value.message
    assert "sk-pr" not in raised.value.message  # was the upstream's message, key and all
    assert "Incorrect API key provided: sk-pr****wxyz." in caplog.text


async def test_an_upstreams_error_code_and_param_are_kept() -> None:
    """They were dropped: a context overflow upstream reached the client without its code."""
    told = {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"error": told}, status=400)

    async with upstream(handle) as backend:
        with pytest.raises(ContextLengthExceeded) as raised:
            await backend.complete(REQUEST)
    assert (raised.value.code, raised.value.param) == ("context_length_exceeded", "messages")


async def test_timeout_is_504() -> None:
    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(ANSWER)

    async with upstream(handle, max_retries=0, read_timeout_s=0.2) as backend:
        with pytest.raises(UpstreamTimeout):
            await backend.complete(REQUEST)


def finished(chunks: Sequence[Chunk]) -> str | None:
    """The finish reason a remote stream's one answer ended with: its finish chunk comes as
    the upstream sends it, before the usage, which comes alone in the last chunk."""
    *_, finish, last = chunks
    assert (last.finish_reason, last.text, last.tool_calls) == (None, "", None)
    assert last.usage is not None
    return finish.finish_reason


def sse(events: Sequence[object]) -> bytes:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()


async def test_stream_is_parsed_with_usage_whatever_the_chunking() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo é"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
    ]
    body = sse(events) + b"data: [DONE]\n\n"

    async def handle(request: web.Request) -> web.StreamResponse:
        assert (await request.json())["stream_options"] == {"include_usage": True}
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(body), 7):  # split lines and even a multi-byte character
            await response.write(body[i : i + 7])
        await response.write_eof()
        return response

    async with upstream(handle) as backend:
        chunks = [c async for c in backend.stream(REQUEST)]
    assert "".join(c.text for c in chunks) == "hello é"
    assert finished(chunks) == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


async def test_stream_lines_longer_than_64_kib_are_read_whole() -> None:
    long_text = "x" * 100_000
    events = [{"choices": [{"delta": {"content": long_text}, "finish_reason": "stop"}]}]

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=sse(events) + b"data: [DONE]\n\n")

    async with upstream(handle) as backend:
        chunks = [c async for c in backend.stream(REQUEST)]
    assert "".join(c.text for c in chunks) == long_text


async def test_stream_cut_before_finish_is_502() -> None:
    body = b'data: {"choices": [{"delta": {"content": "hel"}, "finish_reason": null}]}\n\n'

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body)

    async with upstream(handle) as backend:
        with pytest.raises(UpstreamError, match="without finishing"):
            _ = [c async for c in backend.stream(REQUEST)]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_that_broke_off_after_it_began_was_received(stream: bool) -> None:
    """The upstream bills an answer it began (the gateway then bills it too); an error it
    answered with instead is no answer."""
    events = sse([{"choices": [{"delta": {"content": "hel"}}]}])
    whole = json.dumps(ANSWER).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if "broken" not in json.dumps(await request.json()):
            return web.Response(status=500)
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        await response.prepare(request)
        await response.write(events if stream else whole[:20])
        assert request.transport is not None
        request.transport.close()
        return response

    broken = ChatRequest.model_validate(
        {"model": "cloud", "messages": [{"role": "user", "content": "broken"}]}
    )
    async with upstream(handle, max_retries=0) as backend:
        answer = backend.stream if stream else backend.complete
        with pytest.raises(UpstreamError, match="broke off") as broke:
            await _answered(answer(broken))
        with pytest.raises(UpstreamError, match="answered 500") as failed:
            await _answered(answer(REQUEST))
    assert (broke.value.received, failed.value.received) == (True, False)


async def _answered(answer: AsyncIterator[object] | Awaitable[object]) -> None:
    if isinstance(answer, AsyncIterator):
        _ = [c async for c in answer]
    else:
        await answer


async def test_at_shutdown_answers_under_way_end_with_its_error_and_none_starts() -> None:
    """A stream being read, and a call waiting for its first byte: before, both ran on until
    the server's grace period ended and were cut without a word."""

    async def slow(request: web.Request) -> web.StreamResponse:
        if not (await request.json()).get("stream"):
            await asyncio.sleep(30)
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(300):
            await response.write(sse([{"choices": [{"delta": {"content": "a"}}]}]))
            await asyncio.sleep(0.1)
        return response

    async with upstream(slow) as backend:
        stream = backend.stream(REQUEST.model_copy(update={"stream": True}))
        assert (await anext(stream)).text == "a"
        whole = asyncio.ensure_future(backend.complete(REQUEST))
        await asyncio.sleep(0.1)
        backend.end_answers(ShuttingDown("the server is shutting down; retry"))
        with pytest.raises(ShuttingDown):
            _ = [c async for c in stream]
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(whole, 5)
        with pytest.raises(ShuttingDown):
            await backend.complete(REQUEST)


TOOL_REQUEST = ChatRequest.model_validate(
    {
        "model": "cloud",
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "tool_choice": "required",
    }
)
CALL = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


async def test_tools_go_upstream_and_tool_calls_come_back() -> None:
    seen: list[dict[str, Any]] = []
    answer = {
        "choices": [
            {"message": {"content": None, "tool_calls": [CALL]}, "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 5},
    }

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(answer)

    async with upstream(handle) as backend:
        result = await backend.complete(TOOL_REQUEST)
    assert seen[0]["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    ]
    assert seen[0]["tool_choice"] == "required"
    assert (result.text, result.finish_reason) == ("", "tool_calls")
    assert [call.model_dump() for call in result.tool_calls or []] == [CALL]


async def test_tool_calls_with_extra_fields_or_object_arguments_are_read() -> None:
    loose = {"index": 0, "id": "c1", "type": "function"}
    loose["function"] = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    answer = {"choices": [{"message": {"tool_calls": [loose]}, "finish_reason": "tool_calls"}]}

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(answer)

    async with upstream(handle) as backend:
        result = await backend.complete(TOOL_REQUEST)
    (call,) = result.tool_calls or []
    assert (call.id, call.function.name) == ("c1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


async def test_streamed_tool_calls_are_passed_on_piece_by_piece() -> None:
    first = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather"}}
    events = [
        {"choices": [{"delta": {"role": "assistant", "tool_calls": [first]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": 1}'}}]}}
            ]
        },
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=sse(events) + b"data: [DONE]\n\n")

    async with upstream(handle) as backend:
        chunks = [c async for c in backend.stream(TOOL_REQUEST)]
    deltas = [d for chunk in chunks for d in chunk.tool_calls or []]
    assert (deltas[0].id, deltas[0].name) == ("call_9", "get_weather")
    assert "".join(d.arguments for d in deltas) == '{"city": 1}'
    assert finished(chunks) == "tool_calls"


async def test_n_answers_are_asked_for_in_one_call_and_read_by_index() -> None:
    events = [
        {"choices": [{"index": 1, "delta": {"content": "B1"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "A1"}, "finish_reason": None}]},
        {"choices": [{"index": 1, "delta": {"content": " B2"}, "finish_reason": "length"}]},
        {"choices": [{"index": 0, "delta": {"content": " A2"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}},
    ]
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.Response(body=sse(events) + b"data: [DONE]\n\n")

    async with upstream(handle) as backend:
        chunks = [c async for c in backend.stream(REQUEST.model_copy(update={"n": 2}))]
    assert backend.answers_n_at_once
    assert [body["n"] for body in seen] == [2]
    assert ["".join(c.text for c in chunks if c.index == i) for i in (0, 1)] == ["A1 A2", "B1 B2"]
    finishes = [(c.index, c.finish_reason) for c in chunks if c.finish_reason]
    assert finishes == [(1, "length"), (0, "stop")]  # as each answer finished
    assert [c.usage for c in chunks if c.usage] == [Usage(prompt_tokens=7, completion_tokens=4)]


async def test_an_answer_left_unfinished_or_out_of_range_is_502() -> None:
    unfinished = [{"choices": [{"index": 0, "delta": {"content": "A"}, "finish_reason": "stop"}]}]
    stray = [{"choices": [{"index": 2, "delta": {"content": "C"}, "finish_reason": "stop"}]}]
    answered = (unfinished, r"returned 1 of 2 choices \(does it support n\?\)")
    for events, message in (answered, (stray, "choice 2 of 2")):

        async def handle(request: web.Request, events: list[Any] = events) -> web.Response:
            return web.Response(body=sse(events) + b"data: [DONE]\n\n")

        async with upstream(handle) as backend:
            with pytest.raises(UpstreamError, match=message):
                _ = [c async for c in backend.stream(REQUEST.model_copy(update={"n": 2}))]


async def test_a_whole_answer_asks_for_one_choice() -> None:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(ANSWER)

    async with upstream(handle) as backend:
        answer = await backend.complete(REQUEST.model_copy(update={"n": 3}))
    assert answer.text == "hello"
    assert "n" not in seen[0]


async def test_an_echoed_prompts_unscored_first_token_stays_unscored() -> None:
    echoed = {
        "choices": [
            {
                "text": "Hi there",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": ["Hi", " there"],
                    "token_logprobs": [None, -1.5],
                    "top_logprobs": [None, {" there": -1.5}],
                },
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 0},
    }

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(echoed)

    text_request = TextRequest(
        model="cloud", prompt="Hi there", echo=True, max_tokens=0, logprobs=1
    )
    async with upstream(handle) as backend:
        answer = await backend.complete(text_request)
    assert answer.logprobs is not None
    assert [item.logprob for item in answer.logprobs] == [None, -1.5]


async def test_a_read_timeout_is_not_asked_again() -> None:
    """The upstream has the request and may still answer (and bill) it: a retry doubled the
    work sent to a slow upstream. Failures before the upstream has it are retried."""
    calls = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(2)
        return web.json_response(ANSWER)

    async with upstream(handle, max_retries=2, read_timeout_s=0.2) as backend:
        with pytest.raises(UpstreamTimeout):
            await backend.complete(REQUEST)
    assert calls == 1


async def test_failed_calls_are_counted_by_kind_retries_included() -> None:
    """`/metrics` said nothing of an upstream failing: only the requests' statuses."""
    quota = {"error": {"message": "quota", "code": "insufficient_quota"}}
    replies = [
        web.Response(status=503),
        web.json_response(ANSWER),
        web.json_response({"error": {"message": "slow down"}}, status=429),
        web.json_response(quota, status=429),
        web.json_response({"error": {"message": "bad"}}, status=400),
        web.json_response({"error": {"message": "overloaded"}}),
        web.Response(body=b'data: {"choices": [{"delta": {"content": "hel"}}]}\n\n'),
    ]

    async def handle(request: web.Request) -> web.Response:
        return replies.pop(0)

    async with upstream(handle, max_retries=1) as backend:
        assert backend.upstream_errors() == {}
        assert (await backend.complete(REQUEST)).text == "hello"  # after a 503
        for _ in range(3):  # rate limited, then (its retry) the quota; the 400; the error
            with pytest.raises(Exception, match=r"quota|bad|overloaded"):
                await backend.complete(REQUEST)
        with pytest.raises(UpstreamError, match="without finishing"):
            _ = [c async for c in backend.stream(REQUEST)]
        assert backend.upstream_errors() == {
            "5xx": 1,
            "rate_limited": 1,
            "quota": 1,
            "4xx": 1,
            "error_event": 1,
            "broken": 1,
        }
    async with unreachable() as backend:
        with pytest.raises(UpstreamError):
            await backend.complete(REQUEST)
        assert backend.upstream_errors() == {"connect": 2}
