"""A tool call cut off by `max_tokens` comes back as a tool call, as OpenAI's do: `tool_calls`
with the arguments written so far (JSON that may not parse) and `finish_reason: "length"`,
never the gateway's internal call format as assistant text (which LangChain took for the
final answer). Local answers (`local_tools`, the stream holding in `llamacpp.py`), the fake
backend, and the chat, stream, Responses and `n` renderings of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends import local_tools
from smallfirst.backends.call_reader import CallReader
from smallfirst.backends.llamacpp import _calls_or_prose
from smallfirst.completions import Chunk, Completion, Usage, completion_from_chunks
from smallfirst.types import ChatRequest
from tests.helpers import fake_client, fake_settings

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
# As SmolLM2 writes a call under the grammar: pretty-printed.
OSLO = '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Oslo"\n  }\n}'
TWO = (
    '[\n  {"name": "get_weather", "arguments": {"city": "Oslo"}},\n'
    '  {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}\n]'
)


def request(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [WEATHER],
            **extra,
        }
    )


def cut(text: str) -> Completion:
    return Completion(text=text, finish_reason="length", usage=Usage(completion_tokens=7))


def calls_of(answer: Completion) -> list[tuple[str, str]]:
    return [(c.function.name, c.function.arguments) for c in answer.tool_calls or []]


@pytest.mark.parametrize("tool_choice", ["required", NAMED, "auto"])
def test_a_call_cut_in_its_arguments_is_a_call_with_the_arguments_written(
    tool_choice: object,
) -> None:
    answer = local_tools.as_tool_call(
        request(tool_choice=tool_choice), cut('{"name": "get_weather", "arguments": {"city": "Os')
    )
    assert calls_of(answer) == [("get_weather", '{"city": "Os')]
    assert (answer.text, answer.finish_reason) == ("", "length")
    assert answer.usage.completion_tokens == 7


def test_a_forced_call_cut_in_its_name_calls_the_one_tool_it_can_be() -> None:
    """QA's repro: `{"name": "get_` reached the client as its answer."""
    for choice in ("required", NAMED):
        for text in ('{\n  "name": "get_', "{", '{\n  "', '{"name": "get_weather",'):
            answer = local_tools.as_tool_call(request(tool_choice=choice), cut(text))
            assert calls_of(answer) == [("get_weather", "")], text
            assert (answer.text, answer.finish_reason) == ("", "length")
    # Two tools, and the name does not yet tell which: no call, and no call format as text.
    both = request(tools=[WEATHER, CLOCK], tool_choice="required")
    for text in ('{"name": "get_', "```json\n"):
        undecided = local_tools.as_tool_call(both, cut(text))
        assert (undecided.text, undecided.tool_calls, undecided.finish_reason) == (
            "",
            None,
            "length",
        )
    told = local_tools.as_tool_call(both, cut('{"name": "get_w'))  # only get_weather begins so
    assert calls_of(told) == [("get_weather", "")]


def test_under_auto_a_cut_answer_is_a_call_only_once_its_name_is_whole() -> None:
    """Prose may begin `{"name": "get_wea` (`{"name": "get_weatherman"}`), not with the
    name of an offered tool and its closing quote (`prose_grammar.py`)."""
    for prose in ('{"name": "get_weath', '{"name": "demo", "version": "1', "It is sunny in"):
        assert local_tools.as_tool_call(request(), cut(prose)) == cut(prose)
    fenced = local_tools.as_tool_call(request(), cut('```json\n{"name": "get_weather"'))
    assert calls_of(fenced) == [("get_weather", "")]


def test_parallel_calls_cut_keep_the_whole_ones_and_the_cut_one_as_far_as_written() -> None:
    two_tools = request(tools=[WEATHER, CLOCK])
    answer = local_tools.as_tool_call(two_tools, cut(TWO[: TWO.index("Europe") + 2]))
    assert calls_of(answer) == [("get_weather", '{"city": "Oslo"}'), ("get_time", '{"zone": "Eu')]
    assert answer.finish_reason == "length"
    # cut before the second call's name tells which tool: the whole call alone
    answer = local_tools.as_tool_call(two_tools, cut(TWO[: TWO.index("get_time") + 4]))
    assert calls_of(answer) == [("get_weather", '{"city": "Oslo"}')]
    whole = local_tools.as_tool_call(two_tools, cut(TWO))  # the limit hit on the last "]"
    assert whole.finish_reason == "tool_calls"


def test_the_reader_reads_every_beginning_as_a_beginning_of_the_whole_calls() -> None:
    """What a stream sends of a call is never taken back: each beginning's names and
    arguments begin the whole answer's, which are compact as json.dumps writes them."""
    whole = CallReader(several=True)
    whole.feed(TWO)
    assert whole.whole
    assert [c.arguments for c in whole.calls] == [
        json.dumps(call["arguments"]) for call in json.loads(TWO)
    ]
    for end in range(len(TWO)):
        begun = CallReader(several=True)
        begun.feed(TWO[:end])
        assert begun.is_call
        assert not begun.whole
        for part, call in zip(begun.calls, whole.calls, strict=False):
            assert call.name.startswith(part.name)
            assert call.arguments.startswith(part.arguments)
    for prose in ('{"name": "demo", "version"', '{"arguments": {}', "```python", '[{"name": 1'):
        reader = CallReader(several=True)
        reader.feed(prose)
        assert not reader.is_call, prose


async def answered(asked: ChatRequest, pieces: list[str], finish: str = "length") -> list[Chunk]:
    """The chunks `_calls_or_prose` makes of an engine's pieces (the last has the finish)."""

    async def engine() -> AsyncIterator[Chunk]:
        for piece in pieces[:-1]:
            yield Chunk(text=piece)
        yield Chunk(text=pieces[-1], finish_reason=finish, usage=Usage(completion_tokens=9))

    return [chunk async for chunk in _calls_or_prose(asked, engine())]


async def test_a_cut_call_streams_as_a_call_id_and_name_first_then_its_arguments() -> None:
    pieces = ["{", '\n  "', "name", '":', ' "', "get", "_", "weather", '",\n  "', "arguments"]
    pieces += ['": {', '\n    "', "city", '": "', "Os"]
    for choice in ("required", NAMED, "auto"):
        chunks = await answered(request(tool_choice=choice), pieces)
        assert not any(c.text for c in chunks), choice
        deltas = [d for c in chunks for d in c.tool_calls or []]
        first, *rest = deltas
        assert first.id
        assert first.name == "get_weather"
        assert first.arguments == ""
        assert len(rest) > 1
        assert not any(d.id or d.name for d in rest)
        assert "".join(d.arguments for d in rest) == '{"city": "Os'
        assert (chunks[-1].finish_reason, chunks[-1].usage) == (
            "length",
            Usage(completion_tokens=9),
        )


async def test_a_forced_call_is_streamed_as_soon_as_its_tool_is_known() -> None:
    """Sent while it is written, not held to the end: the name comes with the first piece
    that tells it."""
    chunks = await answered(request(tool_choice="required"), ["{", '"na', "me", '": "g', "et"])
    assert chunks[0].tool_calls
    assert chunks[0].tool_calls[0].name == "get_weather"
    assert chunks[-1].finish_reason == "length"
    undecided = await answered(request(tools=[WEATHER, CLOCK], tool_choice="required"), ["{"])
    assert [(c.text, c.tool_calls, c.finish_reason) for c in undecided] == [("", None, "length")]


async def test_prose_and_json_answers_cut_off_stay_text() -> None:
    prose = await answered(request(), ["It", " is", " sun"])
    assert [c.text for c in prose] == ["It", " is", " sun"]
    begun = await answered(request(), ['{"name": "get_', "weath"])
    assert completion_from_chunks(begun, with_logprobs=False).text == '{"name": "get_weath'
    fmt = {"type": "json_object"}
    answer = await answered(request(response_format=fmt), ['{"name": "get_weather", "ci'])
    assert completion_from_chunks(answer, with_logprobs=False).text == '{"name": "get_weather", "ci'


async def test_a_whole_call_streamed_ends_with_tool_calls() -> None:
    chunks = await answered(request(tool_choice="required"), [OSLO[:20], OSLO[20:]], "stop")
    joined = completion_from_chunks(chunks, with_logprobs=False)
    assert calls_of(joined) == [("get_weather", '{"city": "Oslo"}')]
    assert joined.finish_reason == "tool_calls"


# Through the server: the fake backend cuts its call at max_tokens as a model would.


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    test_client, _ = fake_client(fake_settings(tmp_path))
    with test_client:
        yield test_client


def chat(client: TestClient, **extra: Any) -> Any:
    body = {
        "model": "big",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 2,
        **extra,
    }
    return client.post("/v1/chat/completions", json=body)


def test_a_cut_call_is_a_tool_call_with_finish_reason_length(client: TestClient) -> None:
    body = chat(client, n=2).json()
    for choice in body["choices"]:
        assert choice["finish_reason"] == "length"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["function"] == {"name": "get_weather", "arguments": '{"input": "Weather'}
    assert body["usage"]["completion_tokens"] == 4


def test_a_cut_call_streams_as_tool_call_deltas(client: TestClient) -> None:
    frames = chat(client, stream=True).text.splitlines()
    events = [json.loads(f[6:]) for f in frames if f.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert not any(d.get("content") for d in deltas)
    pieces = [p for d in deltas for p in d.get("tool_calls", [])]
    assert pieces[0]["function"]["name"] == "get_weather"
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"input": "Weather'
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_a_cut_call_is_an_incomplete_function_call_item(client: TestClient) -> None:
    body = {
        "model": "big",
        "input": "Weather in Paris?",
        "tools": [{"type": "function", **WEATHER["function"]}],  # type: ignore[dict-item]
        "tool_choice": "required",
        "max_output_tokens": 2,
    }
    response = client.post("/v1/responses", json=body).json()
    assert (response["status"], response["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    (item,) = response["output"]
    assert (item["type"], item["name"], item["status"]) == (
        "function_call",
        "get_weather",
        "incomplete",
    )
    assert item["arguments"] == '{"input": "Weather'
    streamed = client.post("/v1/responses", json={**body, "stream": True}).text
    last = json.loads(streamed.strip().split("\n\n")[-1].split("\n")[1].removeprefix("data: "))
    assert last["type"] == "response.incomplete"
    assert [o["type"] for o in last["response"]["output"]] == ["function_call"]


async def test_a_remote_call_cut_off_comes_through_as_the_upstream_sent_it() -> None:
    """An OpenAI-compatible upstream sends a cut call in OpenAI's shape already: it is passed
    on as it came, whole or streamed."""
    from aiohttp import web

    from tests.unit.test_openai_compat import TOOL_REQUEST, sse, upstream

    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"ci'},
    }
    answer = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "length"}]}
    first = {**call, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
    more = {"index": 0, "function": {"arguments": '{"ci'}}
    events = [
        {"choices": [{"delta": {"role": "assistant", "tool_calls": [first]}}]},
        {"choices": [{"delta": {"tool_calls": [more]}, "finish_reason": "length"}]},
    ]

    async def handle(request: web.Request) -> web.Response:
        if (await request.json()).get("stream"):
            return web.Response(body=sse(events) + b"data: [DONE]\n\n")
        return web.json_response(answer)

    async with upstream(handle) as backend:
        whole = await backend.complete(TOOL_REQUEST)
        streamed = [chunk async for chunk in backend.stream(TOOL_REQUEST)]
    assert calls_of(whole) == [("get_weather", '{"ci')]
    assert whole.finish_reason == "length"
    joined = completion_from_chunks(streamed, with_logprobs=False)
    assert (calls_of(joined), joined.finish_reason) == ([("get_weather", '{"ci')], "length")


async def test_a_remote_call_cut_before_its_arguments_is_not_made_whole() -> None:
    """`""` is a call cut before its arguments (a `{}` would look complete to an agent);
    null is how some servers say "no arguments"."""
    from aiohttp import web

    from tests.unit.test_openai_compat import TOOL_REQUEST, upstream

    calls = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"id": "c2", "type": "function", "function": {"name": "now", "arguments": None}},
    ]
    answer = {"choices": [{"message": {"tool_calls": calls}, "finish_reason": "length"}]}

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(answer)

    async with upstream(handle) as backend:
        whole = await backend.complete(TOOL_REQUEST)
    assert calls_of(whole) == [("get_weather", ""), ("now", "{}")]
