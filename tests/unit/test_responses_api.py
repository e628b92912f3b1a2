"""POST /v1/responses with fake backends: OpenAI's Responses API over the same gateway."""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from smallfirst.answers import RouteInfo
from smallfirst.completions import (
    Chunk,
    Completion,
    ModelInfo,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from smallfirst.errors import UpstreamError
from smallfirst.server.responses_api_render import ResponseEvents, response_body
from smallfirst.server.responses_api_request import ResponsesRequest
from smallfirst.server.sse import sse_stream
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest
from tests.helpers import RESPONSES_WEATHER_TOOL, fake_backend


def events_of(text: str) -> list[dict[str, Any]]:
    """SSE frames -> event payloads, checking each `event:` line names its payload's type."""
    events = []
    for frame in text.strip().split("\n\n"):
        kind_line, data_line = frame.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert kind_line == f"event: {event['type']}"
        events.append(event)
    return events


def test_text_answer_is_a_response_object(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "response"
    assert body["id"].startswith("resp_")
    assert body["status"] == "completed"
    assert body["model"] == "tiny"
    (message,) = body["output"]
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text"
    assert message["content"][0]["text"] == "Hello from tiny."
    assert body["usage"]["output_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + 3
    assert body["store"] is True  # OpenAI's default (`test_responses_api_stored.py`)
    assert body["smallfirst"]["tier"] == "edge"
    assert response.headers["x-smallfirst-model"] == "tiny"


def test_input_items_become_the_chat_conversation(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "What is the weather today?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
    ]
    body = {
        "model": "big",
        "instructions": "Be brief.",
        "input": items,
        "tools": [RESPONSES_WEATHER_TOOL],
        "max_output_tokens": 50,
        "text": {
            "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}},
            "verbosity": "low",
        },
        "service_tier": "flex",
        "background": False,  # what every answer here is
        "safety_identifier": "u-42",
        "prompt_cache_key": "weather-bot",
        "prompt_cache_options": {"mode": "implicit"},
        "prompt_cache_retention": "in_memory",
    }
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert [m.role for m in sent.messages] == ["system", "user", "assistant", "tool"]
    assert sent.messages[0].text == "Be brief."
    assert sent.messages[1].text == "What is the weather today?"
    assert sent.messages[2].tool_calls is not None
    assert sent.messages[2].tool_calls[0].function.name == "get_weather"
    # the call and its result, paired by one id (pseudonymous for this cloud tier)
    assert sent.messages[3].tool_call_id == sent.messages[2].tool_calls[0].id
    assert sent.messages[3].text == "rain"
    assert (sent.max_tokens, sent.max_completion_tokens) == (None, 50)
    assert sent.response_format is not None
    assert sent.response_format.json_schema is not None
    assert sent.response_format.json_schema.name == "w"
    assert sent.tools is not None
    assert sent.tools[0].function.name == "get_weather"
    # carried over, and pseudonymous on the way to this cloud tier (policy redact)
    assert (sent.safety_identifier or "").startswith("id-")
    assert (sent.prompt_cache_key or "").startswith("cache-")
    assert sent.prompt_cache_options is not None
    assert sent.prompt_cache_options.mode == "implicit"
    assert sent.prompt_cache_retention == "in_memory"
    assert (sent.service_tier, sent.verbosity) == ("flex", "low")  # for remote tiers


def test_a_tool_call_is_a_function_call_item(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {
        "model": "big",
        "input": "Weather in Paris?",
        "tools": [RESPONSES_WEATHER_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
    }
    output = client.post("/v1/responses", json=body).json()["output"]
    assert [item["type"] for item in output] == ["function_call"]
    call = output[0]
    assert call["name"] == "get_weather"
    assert call["call_id"] == "call_fake_1"
    assert json.loads(call["arguments"]) == {"input": "Weather in Paris?"}
    assert call["status"] == "completed"


def test_stream_events_in_openai_order(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/responses", json={"model": "tiny", "input": "Hi", "stream": True})
    events = events_of(response.text)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert deltas == final["output"][0]["content"][0]["text"] == "Hello from tiny."
    assert final["status"] == "completed"
    assert final["usage"]["output_tokens"] == 3
    assert final["id"] == events[0]["response"]["id"]
    assert final["created_at"] == events[0]["response"]["created_at"]


def test_streamed_tool_call_arguments_add_up(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "big", "input": "Weather?", "tools": [RESPONSES_WEATHER_TOOL], "stream": True}
    events = events_of(client.post("/v1/responses", json=body).text)
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call"
    assert added["item"]["name"] == "get_weather"
    pieces = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "".join(pieces) == done["arguments"] == json.dumps({"input": "Weather?"})
    assert events[-1]["response"]["output"][0]["arguments"] == done["arguments"]


def test_an_answer_cut_by_max_output_tokens_is_incomplete() -> None:
    asked = ResponsesRequest(model="m", input="Hi", max_output_tokens=2)
    route = _route()
    cut = Completion(text="Hello there", finish_reason="length", usage=Usage(completion_tokens=2))
    body = response_body(asked, cut, route, "r1")
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"  # the message the limit cut
    assert body["output"][0]["content"][0]["text"] == "Hello there"
    events = ResponseEvents(asked, route, "r1")
    *_, item_done, last = events.events(Chunk(text="Hello", finish_reason="length", usage=Usage()))
    assert last["type"] == "response.incomplete"
    assert item_done["type"] == "response.output_item.done"
    assert last["response"]["output"] == [item_done["item"]]
    assert item_done["item"]["status"] == "incomplete"
    assert item_done["item"]["content"][0]["text"] == "Hello"


async def test_a_stream_that_fails_midway_ends_with_response_failed() -> None:
    """It ended after an `error` event, which no response lifecycle event closes: the SDK's
    stream helper and clients waiting for a terminal event saw a cut connection."""

    async def failing() -> AsyncIterator[Chunk]:
        yield Chunk(text="Hel")
        raise UpstreamError("big: upstream closed the stream")

    events = ResponseEvents(ResponsesRequest(model="m", input="Hi"), _route(), "r1")
    frames = [frame async for frame in sse_stream(events, failing())]
    told = events_of(b"".join(frames).decode())
    parsed = TypeAdapter(list[ResponseStreamEvent]).validate_python(told)
    assert [e["type"] for e in told[-5:]] == [
        "error",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    last = parsed[-1]
    assert isinstance(last, ResponseFailedEvent)
    assert last.response.status == "failed"
    assert last.response.error is not None
    assert last.response.error.code == "server_error"
    assert last.response.error.message == "big: upstream closed the stream"
    assert [item.status for item in last.response.output] == ["incomplete"]
    assert told[-5]["code"] == "upstream_error"  # the `error` event keeps our precise code
    assert [e["sequence_number"] for e in told] == list(range(len(told)))


def test_an_upstreams_reasoning_tokens_are_in_the_usage() -> None:
    asked = ResponsesRequest(model="m", input="Hi")
    usage = Usage(prompt_tokens=9, completion_tokens=40, reasoning_tokens=32)
    body = response_body(asked, Completion(text="4", usage=usage), _route(), "r1")
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 32}
    last = ResponseEvents(asked, _route(), "r1").events(
        Chunk(text="4", finish_reason="stop", usage=usage)
    )[-1]
    assert last["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 32}


def test_an_upstreams_refusal_and_content_filter_are_told_as_openai_tells_them() -> None:
    """The refusal was dropped and a filtered answer was `completed`."""
    asked = ResponsesRequest(model="m", input="Hi")
    refused = Completion(text="", refusal="I can't help.", finish_reason="content_filter")
    body = response_body(asked, refused, _route(), "r1")
    assert (body["status"], body["incomplete_details"]) == (
        "incomplete",
        {"reason": "content_filter"},
    )
    assert body["output"][0]["content"][1] == {"type": "refusal", "refusal": "I can't help."}
    Response.model_validate(body)
    events = ResponseEvents(asked, _route(), "r1")
    pieces = [Chunk(refusal="I can't"), Chunk(refusal=" help."), Chunk(finish_reason="stop")]
    seen = [*events.opening(), *(e for piece in pieces for e in events.events(piece))]
    seen += events.ending()  # the end of the stream: no usage came
    TypeAdapter(list[ResponseStreamEvent]).validate_python(seen)
    kinds = [e["type"].removeprefix("response.") for e in seen if "refusal" in e["type"]]
    assert kinds == ["refusal.delta", "refusal.delta", "refusal.done"]
    assert seen[-1]["response"]["output"][0]["content"][1]["refusal"] == "I can't help."


def test_a_streamed_tokens_logprobs_come_before_its_character_is_whole() -> None:
    """An emoji's first bytes are a token with logprobs and no text yet: the stream dropped
    its logprobs (9 of 12 for five emoji, live), the whole answer kept them."""
    asked = ResponsesRequest.model_validate(
        {"model": "m", "input": "x", "include": ["message.output_text.logprobs"]}
    )
    earth = list("🌍".encode())
    first, rest = TokenLogprob(token="?", utf8=earth[:2], logprob=-0.1), earth[2:]
    pieces = [
        Chunk(logprobs=[first]),
        Chunk(text="🌍", logprobs=[TokenLogprob(token="?", utf8=rest, logprob=-0.2)]),
        Chunk(finish_reason="stop", usage=Usage()),
    ]
    events = ResponseEvents(asked, _route(), "r1")
    seen = [*events.opening(), *(e for piece in pieces for e in events.events(piece))]
    TypeAdapter(list[ResponseStreamEvent]).validate_python(seen)
    deltas = [e for e in seen if e["type"] == "response.output_text.delta"]
    assert [len(e["logprobs"]) for e in deltas] == [1, 1]
    assert "".join(e["delta"] for e in deltas) == "🌍"
    assert len(seen[-1]["response"]["output"][0]["content"][0]["logprobs"]) == 2


def test_several_calls_stream_one_after_another_as_openai_streams_them() -> None:
    """Both stayed open until the end; clients that follow "the current item" broke."""
    asked = ResponsesRequest(model="m", input="Weather in Oslo and Bergen?")
    events = ResponseEvents(asked, _route(), "r1")
    pieces = [
        ToolCallDelta(index=0, id="c0", name="get_weather", arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Oslo"}'),
        ToolCallDelta(index=1, id="c1", name="get_weather", arguments='{"city": "Bergen"}'),
        ToolCallDelta(index=0, arguments=" "),  # an upstream that goes back to a call
    ]
    seen = [e for piece in pieces for e in events.events(Chunk(tool_calls=[piece]))]
    seen += events.events(Chunk(finish_reason="tool_calls", usage=Usage()))
    order = [(e["type"].removeprefix("response."), e.get("output_index")) for e in seen]
    assert order == [
        ("output_item.added", 0),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.done", 0),
        ("output_item.done", 0),
        ("output_item.added", 1),
        ("function_call_arguments.delta", 1),
        ("function_call_arguments.done", 1),
        ("output_item.done", 1),
        ("completed", None),
    ]
    final = seen[-1]["response"]["output"]
    assert [item["arguments"] for item in final] == ['{"city": "Oslo"} ', '{"city": "Bergen"}']


def test_calls_an_upstream_interleaves_stream_whole_one_after_another() -> None:
    """An upstream that names every call first, then writes their arguments by turns: the
    first call was closed when the second was named, so its `done` events (what clients that
    run a call at `output_item.done` read) carried empty arguments; the pieces after it were
    in `response.completed` only, with no delta."""
    asked = ResponsesRequest(model="m", input="Weather in Oslo and Bergen?")
    events = ResponseEvents(asked, _route(), "r1")
    pieces = [
        ToolCallDelta(index=0, id="c0", name="get_weather", arguments=""),
        ToolCallDelta(index=1, id="c1", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=1, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Oslo"}'),
        ToolCallDelta(index=1, arguments='"Bergen"}'),
    ]
    seen = [*events.opening(), *(e for p in pieces for e in events.events(Chunk(tool_calls=[p])))]
    seen += events.events(Chunk(finish_reason="tool_calls", usage=Usage()))
    TypeAdapter(list[ResponseStreamEvent]).validate_python(seen)
    order = [(e["type"].removeprefix("response."), e.get("output_index")) for e in seen[2:]]
    assert order == [
        ("output_item.added", 0),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.done", 0),
        ("output_item.done", 0),
        ("output_item.added", 1),
        ("function_call_arguments.delta", 1),  # what was written while the first was open
        ("function_call_arguments.delta", 1),
        ("function_call_arguments.done", 1),
        ("output_item.done", 1),
        ("completed", None),
    ]
    wanted = ['{"city": "Oslo"}', '{"city": "Bergen"}']
    for index, arguments in enumerate(wanted):
        at = [e for e in seen if e.get("output_index") == index]
        deltas = "".join(e["delta"] for e in at if e["type"].endswith("arguments.delta"))
        (done,) = [e for e in at if e["type"] == "response.output_item.done"]
        assert deltas == done["item"]["arguments"] == arguments
    assert [item["arguments"] for item in seen[-1]["response"]["output"]] == wanted


@pytest.mark.parametrize(
    "asked",
    [
        {"input": "Hi"},
        {"input": "Hi", "max_output_tokens": 1},  # incomplete
        {"input": "Weather?", "tools": [RESPONSES_WEATHER_TOOL]},  # a function_call item
        {"input": "Hi", "include": ["message.output_text.logprobs"], "top_logprobs": 2},
        # the echoed format lacked the name the SDK's type requires (the request may omit it)
        {"input": "Hi", "text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ],
)
def test_responses_are_read_by_the_openai_sdks_types(
    api: tuple[TestClient, Gateway], asked: dict[str, Any]
) -> None:
    client, _ = api
    body = client.post("/v1/responses", json={"model": "tiny", **asked}).json()
    whole = Response.model_validate(body)
    assert whole.usage is not None
    assert whole.usage.input_tokens_details.cache_write_tokens == 0
    assert whole.usage.output_tokens_details.reasoning_tokens == 0
    streamed = client.post("/v1/responses", json={"model": "tiny", "stream": True, **asked})
    events = TypeAdapter(list[ResponseStreamEvent]).validate_python(events_of(streamed.text))
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent | ResponseIncompleteEvent)
    assert final.response.status == whole.status
    assert final.response.usage is not None


def _route() -> RouteInfo:
    model = ModelInfo(id="m", tier="edge", backend="fake", context_length=100)
    return RouteInfo(model=model, router="none", reason="asked for by id")


def test_logprobs_come_when_include_asks_for_them(api: tuple[TestClient, Gateway]) -> None:
    """As OpenAI's: `include: ["message.output_text.logprobs"]` fills `output_text.logprobs`
    (whole, in each text delta and in `output_text.done`); without it they stay empty."""
    client, _ = api
    asked = {"model": "tiny", "input": "Hi", "top_logprobs": 2}
    plain = client.post("/v1/responses", json=asked).json()
    assert plain["output"][0]["content"][0]["logprobs"] == []
    asked["include"] = ["message.output_text.logprobs", "reasoning.encrypted_content"]
    whole = client.post("/v1/responses", json=asked).json()
    part = whole["output"][0]["content"][0]
    assert "".join(item["token"] for item in part["logprobs"]) == part["text"]
    assert {"token", "logprob", "bytes", "top_logprobs"} == set(part["logprobs"][0])
    assert whole["top_logprobs"] == 2
    events = events_of(client.post("/v1/responses", json={**asked, "stream": True}).text)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [item for e in deltas for item in e["logprobs"]] == part["logprobs"]
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    assert done["logprobs"] == part["logprobs"]
    refused = client.post("/v1/responses", json={**asked, "include": ["file_search_call.results"]})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "include"


def test_an_answer_with_a_refusal_goes_back_into_the_next_turn(
    api: tuple[TestClient, Gateway],
) -> None:
    """`input += response.output` after an upstream's refusal was a 400: the message item
    this gateway wrote has a refusal part, which its own input refused."""
    client, gateway = api
    refused = response_body(
        ResponsesRequest(model="big", input="Hi"),
        Completion(text="", refusal="I can't help with that.", finish_reason="stop"),
        _route(),
        "r1",
    )
    items = [
        {"role": "user", "content": "Hi"},
        *refused["output"],
        {"role": "user", "content": "Why not?"},
    ]
    response = client.post("/v1/responses", json={"model": "big", "input": items})
    assert response.status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    answer = sent.messages[1]
    assert (answer.role, answer.text) == ("assistant", "")
    assert answer.refusal == "I can't help with that."
    # a refusal is what an assistant said: in a user's message it is still refused
    items[0] = {"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}
    response = client.post("/v1/responses", json={"model": "big", "input": items})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input.0.content.0.type"


def test_allowed_tools_narrow_what_the_answer_may_call(api: tuple[TestClient, Gateway]) -> None:
    """The Responses API's flat `allowed_tools` choice was refused; it is now chat's, and the
    response echoes it as sent (the SDK's `ToolChoiceAllowed`)."""
    client, _ = api
    clock = {**RESPONSES_WEATHER_TOOL, "name": "get_time"}
    choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    asked = {
        "model": "tiny",
        "input": "Time?",
        "tools": [RESPONSES_WEATHER_TOOL, clock],
        "tool_choice": choice,
    }
    body = client.post("/v1/responses", json=asked).json()
    whole = Response.model_validate(body)
    assert [item.type for item in whole.output] == ["function_call"]
    assert body["output"][0]["name"] == "get_time"
    assert body["tool_choice"] == choice
    assert len(body["tools"]) == 2
    choice["tools"] = [{"type": "function", "name": "get_date"}]
    refused = client.post("/v1/responses", json=asked)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "tool_choice.tools"


def test_the_response_echoes_what_openai_echoes(api: tuple[TestClient, Gateway]) -> None:
    """`completed_at` once completed (OpenAI's: only then), and the request's `background`,
    `safety_identifier` and `prompt_cache_key` (as sent, not as passed on upstream), as
    the SDK's `Response` reads them; they were missing."""
    client, _ = api
    asked = {
        "model": "tiny",
        "input": "Hi",
        "safety_identifier": "u-42",
        "prompt_cache_key": "greeter",
        "background": False,
        "max_tool_calls": 2,  # of built-in tools, which none here are: honoured as it is
    }
    body = client.post("/v1/responses", json=asked).json()
    assert body["status"] == "completed"
    assert body["max_tool_calls"] == 2
    assert body["completed_at"] >= body["created_at"]
    assert (body["safety_identifier"], body["prompt_cache_key"]) == ("u-42", "greeter")
    assert body["background"] is False
    cut = client.post("/v1/responses", json={**asked, "max_output_tokens": 1}).json()
    assert cut["status"] == "incomplete"
    assert cut["completed_at"] is None
    events = events_of(client.post("/v1/responses", json={**asked, "stream": True}).text)
    assert events[0]["response"]["completed_at"] is None
    assert events[-1]["response"]["completed_at"] >= events[0]["response"]["created_at"]


def test_stream_options_go_with_a_stream(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    asked = {"model": "tiny", "input": "Hi", "stream_options": {"include_obfuscation": False}}
    streamed = client.post("/v1/responses", json={**asked, "stream": True})
    assert events_of(streamed.text)[-1]["type"] == "response.completed"
    whole = client.post("/v1/responses", json=asked)
    assert whole.status_code == 400
    assert whole.json()["error"]["param"] == "stream_options"
    assert "only allowed when 'stream' is enabled" in whole.json()["error"]["message"]
