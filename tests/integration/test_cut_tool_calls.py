"""A tool call the bundled model is cut off in by `max_tokens` comes back as a tool call, as
OpenAI's do (`tool_calls` with the arguments written so far, `finish_reason: "length"`), in a
chat answer, a chat stream, `n` answers and the Responses API: it came back as assistant text
holding the gateway's own call format, `{"name": "get_`, which clients took for the answer."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Server, openai_client

pytestmark = pytest.mark.integration

PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMETERS}}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def test_a_call_cut_in_its_name_is_the_forced_tool_with_no_arguments_yet(
    local_tools_gateway: Server,
) -> None:
    client = openai_client(local_tools_gateway)
    for tool_choice in ("required", NAMED):
        reply = client.chat.completions.create(
            model="smollm2-135m",
            messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice=tool_choice,  # type: ignore[arg-type]
            max_tokens=6,  # '{\n  "name": "' when the answer was text
            temperature=0,
            n=2,
        )
        for choice in reply.choices:
            assert choice.finish_reason == "length"
            assert choice.message.content is None
            (call,) = choice.message.tool_calls or []
            assert call.function.name == "get_weather"  # type: ignore[union-attr]


def test_a_call_cut_in_its_arguments_has_the_arguments_written(local_tools_gateway: Server) -> None:
    client = openai_client(local_tools_gateway)

    def arguments(max_tokens: int, stream: bool = False) -> tuple[str, str | None]:
        asked = {
            "model": "smollm2-135m",
            "messages": ASK,
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if not stream:
            choice = client.chat.completions.create(**asked).choices[0]  # type: ignore[call-overload]
            (call,) = choice.message.tool_calls or []
            return call.function.arguments, choice.finish_reason
        events = list(client.chat.completions.create(**asked, stream=True))  # type: ignore[call-overload]
        deltas = [c.delta for e in events for c in e.choices]
        assert not any(d.content for d in deltas)
        pieces = [p for d in deltas for p in d.tool_calls or []]
        assert pieces[0].function.name == "get_weather"
        finish = [c.finish_reason for e in events for c in e.choices if c.finish_reason]
        return "".join(p.function.arguments or "" for p in pieces), finish[-1]

    whole, finish = arguments(60)
    assert finish == "tool_calls"
    assert isinstance(json.loads(whole)["city"], str)
    cut, finish = arguments(18)  # greedy: the same call, cut
    assert finish == "length"
    assert cut
    assert whole.startswith(cut)
    assert cut != whole
    assert arguments(18, stream=True) == (cut, "length")


def test_a_cut_call_is_an_incomplete_function_call_item(local_tools_gateway: Server) -> None:
    response = openai_client(local_tools_gateway).responses.create(
        model="smollm2-135m",
        input="What is the weather in Oslo?",
        tools=[{"type": "function", "name": "get_weather", "parameters": PARAMETERS}],  # type: ignore[list-item]
        tool_choice="required",
        max_output_tokens=8,
        temperature=0,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    (item,) = response.output
    assert item.type == "function_call"
    assert (item.name, item.status) == ("get_weather", "incomplete")


def test_a_call_streamed_through_the_openai_client_is_the_call_whole(
    local_tools_gateway: Server,
) -> None:
    """The client's joined stream had `content=""` beside the call (the stream opened with
    `content: ""`); whole, the message has None."""
    client = openai_client(local_tools_gateway)
    asked = {
        "model": "smollm2-135m",
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
        "temperature": 0,
    }
    whole = client.chat.completions.create(**asked).choices[0].message  # type: ignore[call-overload]
    with client.chat.completions.stream(**asked) as stream:  # type: ignore[arg-type]
        streamed = stream.get_final_completion().choices[0].message
    assert (whole.content, streamed.content) == (None, None)
    assert [c.function.model_dump() for c in whole.tool_calls or []] == [
        {"name": c.function.name, "arguments": c.function.arguments}
        for c in streamed.tool_calls or []
    ]
