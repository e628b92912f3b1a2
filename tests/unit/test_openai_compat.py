"""The remote backend's protocol handling, against httpx's in-process MockTransport.

(Its behaviour against a real second server on loopback is in tests/integration.)"""

import json

import httpx
import pytest

from smallfirst.backends.openai_compat import OpenAICompatBackend
from smallfirst.config import OpenAICompatModel
from smallfirst.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from smallfirst.types import ChatRequest

REQUEST = ChatRequest.model_validate(
    {"model": "cloud", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
)
ANSWER = {
    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 1},
}


def backend(handler: httpx.MockTransport, **config: object) -> OpenAICompatBackend:
    settings = OpenAICompatModel.model_validate(
        {
            "id": "cloud",
            "tier": "cloud",
            "base_url": "http://upstream.test/v1",
            "remote_model": "gpt-x",
            "backoff_s": 0,
            **config,
        }
    )
    return OpenAICompatBackend(settings, transport=handler)


async def test_sends_the_remote_model_name_and_parses_the_answer() -> None:
    seen: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json=ANSWER)

    result = await backend(httpx.MockTransport(handle)).complete(REQUEST)
    assert result.text == "hello"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 1)
    assert seen[0]["model"] == "gpt-x"
    assert seen[0]["max_tokens"] == 5
    assert "route" not in seen[0]


async def test_retries_on_503_then_succeeds() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503) if calls < 3 else httpx.Response(200, json=ANSWER)

    assert (await backend(httpx.MockTransport(handle), max_retries=2).complete(REQUEST)).text
    assert calls == 3


async def test_gives_up_after_retries_with_502() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(UpstreamError):
        await backend(httpx.MockTransport(handle), max_retries=1).complete(REQUEST)


async def test_client_errors_are_not_retried_and_keep_the_message() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"message": "context too long"}})

    with pytest.raises(InvalidRequest, match="context too long"):
        await backend(httpx.MockTransport(handle)).complete(REQUEST)
    assert calls == 1


async def test_timeout_is_504() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(UpstreamTimeout):
        await backend(httpx.MockTransport(handle), max_retries=0).complete(REQUEST)


async def test_stream_is_parsed_with_usage() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    def handle(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream_options"] == {"include_usage": True}
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    chunks = [c async for c in backend(httpx.MockTransport(handle)).stream(REQUEST)]
    assert "".join(c.text for c in chunks) == "hello"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


async def test_stream_cut_before_finish_is_502() -> None:
    body = 'data: {"choices": [{"delta": {"content": "hel"}, "finish_reason": null}]}\n\n'

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body)

    with pytest.raises(UpstreamError, match="without finishing"):
        _ = [c async for c in backend(httpx.MockTransport(handle)).stream(REQUEST)]
