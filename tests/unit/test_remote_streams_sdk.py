"""A remote model's streams as the openai SDK reads them, for the three ways upstreams send a
stream's usage: in a chunk of its own after the finishes (OpenAI, with
`stream_options.include_usage`), in the last finish chunk (vLLM, llama.cpp's server), or not
at all. The gateway gives each answer's finish as it comes and the usage after all of them;
what the SDK puts together from a stream is the answer the same request gets whole, the usage
comes exactly when asked for, with the upstream's numbers, and the request log has the same
row for both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from smallfirst.logs import RequestRecord
from tests.helpers import LOOPBACK, fake_client, fake_settings
from tests.unit.test_remote_accounting import MODEL, PRICED, remote_model, serving

OWN_CHUNK = "own chunk"
IN_THE_FINISH = "in the finish"
NONE = "none"
PROMPT_TOKENS = 17
PIECES = ("Hello", " there", ", choice ", "{index}", ".")
ARGUMENT_PIECES = ('{"ci', 'ty": "Pa', 'ris"}')
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
MESSAGES = [{"role": "user", "content": "Say hello."}]
RECORDED = ("prompt_tokens", "completion_tokens", "cost_usd", "response", "status", "tier")
# The order of a Responses stream's events for one message, as OpenAI's API reference has it
# (runs of deltas counted once).
RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _completion_tokens(n: int, tools: bool) -> int:
    return (len(ARGUMENT_PIECES) if tools else len(PIECES)) * n


class OpenAIShaped:
    """An upstream that answers as OpenAI's API does, sending a stream's usage as `usage_at`
    says. Answer i is "Hello there, choice i." (or a call of `weather` when sent tools); a
    stream of several interleaves them, so that the first finishes before the last ends."""

    def __init__(self, usage_at: str) -> None:
        self.usage_at = usage_at

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = "messages" in body
        n, tools = body.get("n") or 1, bool(body.get("tools"))
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": _completion_tokens(n, tools),
        }
        if not body["stream"]:
            choices = [self._whole(index, chat, tools) for index in range(n)]
            whole: dict[str, Any] = {"id": "up", "choices": choices}
            return web.json_response(whole | ({} if self.usage_at == NONE else {"usage": usage}))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in self._stream(body, chat, n, tools, usage):
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    def _whole(self, index: int, chat: bool, tools: bool) -> dict[str, Any]:
        if not chat:
            return {"index": index, "text": _text(index), "finish_reason": "stop"}
        message: dict[str, Any] = {"role": "assistant", "content": None if tools else _text(index)}
        if tools:
            call = {"name": "weather", "arguments": "".join(ARGUMENT_PIECES)}
            message["tool_calls"] = [{"id": f"call_{index}", "type": "function", "function": call}]
        finish = "tool_calls" if tools else "stop"
        return {"index": index, "message": message, "finish_reason": finish}

    def _stream(
        self, body: dict[str, Any], chat: bool, n: int, tools: bool, usage: dict[str, int]
    ) -> Iterator[dict[str, Any]]:
        pieces = [_pieces(index, chat, tools) for index in range(n)]
        for step in range(len(pieces[0])):
            for index in range(n):
                event: dict[str, Any] = {"id": "up", "choices": [pieces[index][step]]}
                last = step == len(pieces[0]) - 1 and index == n - 1
                if last and self.usage_at == IN_THE_FINISH:
                    event["usage"] = usage
                yield event
        if self.usage_at == OWN_CHUNK and body.get("stream_options", {}).get("include_usage"):
            yield {"id": "up", "choices": [], "usage": usage}


def _text(index: int) -> str:
    return "".join(PIECES).format(index=index)


def _pieces(index: int, chat: bool, tools: bool) -> list[dict[str, Any]]:
    """Answer `index`'s stream choices, the first naming the role, the last the finish."""
    if not chat:
        texts = [piece.format(index=index) for piece in PIECES]
        pieces = [{"index": index, "text": text, "finish_reason": None} for text in texts]
    elif tools:
        first, *rest = ARGUMENT_PIECES
        function = {"name": "weather", "arguments": first}
        opening = {"index": 0, "id": f"call_{index}", "type": "function", "function": function}
        calls = [opening, *({"index": 0, "function": {"arguments": part}} for part in rest)]
        deltas = [{"tool_calls": [call]} for call in calls]
        pieces = [{"index": index, "delta": delta, "finish_reason": None} for delta in deltas]
    else:
        deltas = [{"content": piece.format(index=index)} for piece in PIECES]
        pieces = [{"index": index, "delta": delta, "finish_reason": None} for delta in deltas]
    if chat:
        pieces[0]["delta"]["role"] = "assistant"
    pieces[-1]["finish_reason"] = "tool_calls" if tools else "stop"
    return pieces


@dataclass
class Gateway:
    sdk: openai.OpenAI
    records: list[RequestRecord]
    usage_at: str

    def logged(self) -> dict[str, Any]:
        """The request log's row of the latest request."""
        return self.records[-1].model_dump(include=set(RECORDED))


@pytest.fixture(params=[OWN_CHUNK, IN_THE_FINISH, NONE])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    with serving(OpenAIShaped(request.param)) as base_url:
        model = remote_model(base_url, "cloud", PRICED)
        settings = fake_settings(tmp_path, models=[model], privacy={"enabled": False})
        client, smallfirst = fake_client(settings)
        records: list[RequestRecord] = []
        smallfirst.ledger.add_observer(records.append)
        with client:
            sdk = openai.OpenAI(base_url=f"{LOOPBACK}/v1", api_key="unused", http_client=client)
            yield Gateway(sdk, records, request.param)


def _upstreams_usage(gateway: Gateway, n: int, tools: bool = False) -> tuple[int, int] | None:
    if gateway.usage_at == NONE:
        return None  # the gateway's estimate, the same for a stream and a whole answer
    return PROMPT_TOKENS, _completion_tokens(n, tools)


def _calls(completion: ChatCompletion) -> list[list[tuple[str, str]]]:
    return [
        [(call.function.name, call.function.arguments) for call in choice.message.tool_calls or []]
        for choice in completion.choices
    ]


def _chat_both_ways(
    gateway: Gateway, include_usage: bool, **request: Any
) -> tuple[ChatCompletion, list[ChatCompletionChunk]]:
    """A chat request answered whole, then streamed, with their request log rows equal."""
    whole = gateway.sdk.chat.completions.create(model=MODEL, messages=MESSAGES, **request)
    logged_whole = gateway.logged()
    stream_options: Any = {"include_usage": True} if include_usage else openai.omit
    chunks = list(
        gateway.sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options=stream_options, **request
        )
    )
    assert gateway.logged() == logged_whole
    assert gateway.records[-1].stream
    return whole, chunks


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("n", [1, 2])
def test_a_streamed_chat_reads_as_the_answer_whole(
    gateway: Gateway, n: int, include_usage: bool
) -> None:
    whole, chunks = _chat_both_ways(gateway, include_usage, n=n)
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    streamed = state.get_final_completion()
    assert [c.message.content for c in streamed.choices] == [_text(i) for i in range(n)]
    assert [c.message.content for c in streamed.choices] == [
        c.message.content for c in whole.choices
    ]
    assert [c.finish_reason for c in streamed.choices] == ["stop"] * n
    assert whole.usage is not None
    upstreams = _upstreams_usage(gateway, n)
    if upstreams is not None:
        assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == upstreams
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    if include_usage:  # last, in a chunk of its own, as OpenAI sends it
        assert with_usage == [chunks[-1]]
        assert chunks[-1].choices == []
        assert chunks[-1].usage == whole.usage
    else:
        assert with_usage == []
        assert all(chunk.choices for chunk in chunks)
    for index in range(n):
        its_own = [c for chunk in chunks for c in chunk.choices if c.index == index]
        assert its_own[0].delta.role == "assistant"
        assert [c.finish_reason for c in its_own].count("stop") == 1
        assert its_own[-1].finish_reason == "stop"  # nothing of an answer after its finish


def test_each_answer_finishes_as_the_upstream_finishes_it(gateway: Gateway) -> None:
    """The upstream finishes the first of two answers before the second's last piece."""
    _, chunks = _chat_both_ways(gateway, True, n=2)
    told = [(c.index, c.delta.content, c.finish_reason) for ch in chunks for c in ch.choices]
    assert told.index((0, None, "stop")) < told.index((1, ".", None))


def test_streamed_tool_calls_read_as_the_calls_whole(gateway: Gateway) -> None:
    tool_choice: Any = {"type": "function", "function": {"name": "weather"}}
    whole, chunks = _chat_both_ways(gateway, True, n=2, tools=[WEATHER], tool_choice=tool_choice)
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    streamed = state.get_final_completion()
    assert _calls(streamed) == _calls(whole) == [[("weather", '{"city": "Paris"}')]] * 2
    assert [c.finish_reason for c in streamed.choices] == ["tool_calls"] * 2
    assert chunks[-1].usage == whole.usage
    assert whole.usage is not None
    upstreams = _upstreams_usage(gateway, 2, tools=True)
    if upstreams is not None:
        assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == upstreams


def test_the_sdks_stream_helper_gets_the_answer_and_its_usage(gateway: Gateway) -> None:
    whole = gateway.sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    with gateway.sdk.chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert final.choices[0].message.content == whole.choices[0].message.content == _text(0)
    assert final.usage == whole.usage
    assert kinds.index("content.done") < len(kinds) - 1  # the usage's chunk comes after it


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_streamed_text_completion_reads_as_the_answer_whole(
    gateway: Gateway, include_usage: bool
) -> None:
    whole = gateway.sdk.completions.create(model=MODEL, prompt="Once", n=2)
    logged_whole = gateway.logged()
    stream_options: Any = {"include_usage": True} if include_usage else openai.omit
    chunks = list(
        gateway.sdk.completions.create(
            model=MODEL, prompt="Once", n=2, stream=True, stream_options=stream_options
        )
    )
    assert gateway.logged() == logged_whole
    for index, choice in enumerate(whole.choices):
        its_own = [c for chunk in chunks for c in chunk.choices if c.index == index]
        assert "".join(c.text for c in its_own) == choice.text == _text(index)
        assert [c.finish_reason for c in its_own if c.finish_reason] == ["stop"]
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    assert with_usage == ([chunks[-1]] if include_usage else [])
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage == whole.usage


def test_a_streamed_response_comes_in_openais_order_and_completes_as_the_whole(
    gateway: Gateway,
) -> None:
    whole = gateway.sdk.responses.create(model=MODEL, input="Say hello.", store=False)
    logged_whole = gateway.logged()
    events = list(
        gateway.sdk.responses.create(model=MODEL, input="Say hello.", store=False, stream=True)
    )
    assert gateway.logged() == logged_whole
    kinds = [event.type for event in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == RESPONSE_EVENTS
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == whole.output_text == _text(0)
    assert completed.response.usage == whole.usage
    assert whole.usage is not None
    upstreams = _upstreams_usage(gateway, 1)
    if upstreams is not None:
        assert (whole.usage.input_tokens, whole.usage.output_tokens) == upstreams
    with gateway.sdk.responses.stream(model=MODEL, input="Say hello.", store=False) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert (final.output_text, final.usage) == (whole.output_text, whole.usage)
