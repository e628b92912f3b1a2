"""Tool calling: validation, which tier may answer, OpenAI's response and stream shapes, the
conversation loop, and PII kept out of the cloud inside tool-call arguments.

The fake backend calls the offered tool with `{"input": <last user text>}` (see backends/fake.py),
so the arguments show exactly what text the model received."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends import local_tools
from smallfirst.completions import Chunk, Completion, completion_from_chunks
from smallfirst.privacy.redact import Redaction
from smallfirst.types import ChatRequest
from tests.helpers import fake_backend, fake_client, fake_settings

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
EMAIL = "jane.doe@example.com"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    """tiny (edge) cannot call tools; big (cloud) can."""
    settings = fake_settings(tmp_path)
    settings.models[0].tools = False  # type: ignore[union-attr]
    client, gateway = fake_client(settings)
    with client:
        yield client, gateway


def ask(client: TestClient, model: str = "auto", **extra: Any) -> Any:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        **extra,
    }
    return client.post("/v1/chat/completions", json=body)


def sse_events(text: str) -> list[dict[str, Any]]:
    payloads = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def tool_call_pieces(response_text: str) -> list[dict[str, Any]]:
    """The streamed `delta.tool_calls[0]` pieces, in order."""
    return [
        event["choices"][0]["delta"]["tool_calls"][0]
        for event in sse_events(response_text)
        if event["choices"] and "tool_calls" in event["choices"][0]["delta"]
    ]


def test_auto_sends_tools_to_a_model_that_can_call_them(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    response = ask(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "big"
    assert "tiny cannot call tools, so big answers" in body["smallfirst"]["reason"]
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert (call["type"], call["function"]["name"]) == ("function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"input": "Weather in Paris?"}


def test_under_the_cascade_the_nearest_model_that_can_call_tools_answers(
    tmp_path: Path,
) -> None:
    settings = fake_settings(tmp_path, routing={"router": "cascade"})
    settings.models[0].tools = False  # type: ignore[union-attr]
    settings.models.append(
        settings.models[1].model_copy(update={"id": "mid", "tier": "onprem", "tools": True})
    )
    client, _ = fake_client(settings)
    with client:
        body = ask(client).json()
    assert body["model"] == "mid"  # was big: the cascade's escalation, skipping on-prem
    assert "tools offered, so no cascade: mid answers" in body["smallfirst"]["reason"]


def test_a_model_asked_by_id_is_not_swapped(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    refused = ask(client, model="tiny")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("tools_not_supported", "tools")
    assert "`tiny` cannot call tools" in error["message"]
    switched_off = ask(client, model="tiny", tool_choice="none")
    assert switched_off.status_code == 200
    assert switched_off.json()["choices"][0]["message"]["content"] == "Hello from tiny."


def test_a_tier_asked_for_is_not_swapped_and_the_400_says_it_was_the_tier(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    body = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER]}
    refused = client.post("/v1/chat/completions", json=body, headers={"x-smallfirst-route": "edge"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(
        "The tier asked for (edge) is answered by `tiny`, which cannot call tools"
    )


def test_a_request_kept_local_by_policy_is_told_that_no_local_model_calls_tools(
    api: tuple[TestClient, Any],
) -> None:
    """It was told to pick a model that can, or model `auto`, which it had sent."""
    client, _ = api
    private = [{"role": "user", "content": f"Mail {EMAIL} the weather in Paris"}]
    body = {"model": "auto", "messages": private, "tools": [WEATHER], "privacy": "local_only"}
    refused = client.post(
        "/v1/chat/completions", json=body, headers={"x-smallfirst-route": "cloud"}
    )
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "must stay on local tiers" in message
    assert "no local model can call tools" in message


def test_the_tool_call_streams_in_openai_shape(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    response = ask(client, stream=True)
    pieces = tool_call_pieces(response.text)
    first, *rest = pieces
    assert first["id"].startswith("call_")
    assert first["type"] == "function"
    assert first["function"]["name"] == "get_weather"
    assert all("id" not in piece and "name" not in piece["function"] for piece in rest)
    arguments = "".join(piece["function"]["arguments"] for piece in pieces)
    assert json.loads(arguments) == {"input": "Weather in Paris?"}
    assert sse_events(response.text)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_streamed_call_opens_with_null_content_as_openai_streams_it(
    api: tuple[TestClient, Any],
) -> None:
    """OpenAI's first delta of a call is role, `content: null` and the call's first piece:
    an opening `content: ""` made the openai SDK's joined message `content=""` beside the
    calls, where the same answer unstreamed has None."""
    client, _ = api
    events = sse_events(ask(client, stream=True).text)
    first = events[0]["choices"][0]["delta"]
    assert (first["role"], first["content"], first["refusal"]) == ("assistant", None, None)
    assert first["tool_calls"][0]["function"]["name"] == "get_weather"
    assert all("role" not in event["choices"][0]["delta"] for event in events[1:])
    plain = sse_events(ask(client, stream=True, tool_choice="none").text)
    assert plain[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}


def test_the_tool_result_goes_back_and_the_answer_comes(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    first = ask(client).json()["choices"][0]["message"]
    conversation = [
        {"role": "user", "content": "Weather in Paris?"},
        first,  # echoed as it came: content null, refusal null, tool_calls
        {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "18 C, sunny"},
    ]
    final = ask(client, messages=conversation)
    assert final.status_code == 200, final.text
    assert final.json()["choices"][0]["message"]["content"] == "Hello from big."
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    (sent_call,) = sent.messages[1].tool_calls or []
    # "Paris" is a place and the cloud tier's default policy is redact: the echoed call too
    assert json.loads(sent_call.function.arguments) == {"input": "Weather in <LOCATION_1>?"}
    # the call and its result, paired by one id (pseudonymous under that policy)
    assert sent.messages[2].tool_call_id == sent_call.id


def test_a_conversation_copied_from_openai_is_accepted(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    as_openai_sent_it = {
        "role": "assistant",
        "content": "Hello!",
        "refusal": None,
        "function_call": None,
        "audio": None,
        "annotations": [],
        "tool_calls": [],
    }
    history = [
        {"role": "user", "content": "Hi"},
        as_openai_sent_it,
        {"role": "user", "content": "Hi"},
    ]
    response = ask(client, messages=history, tool_choice="none")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not among"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice needs tools"),
        ({"messages": [{"role": "tool", "content": "18 C"}]}, "needs tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
            "only assistant messages",
        ),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0"),
    ],
)
def test_malformed_tool_requests_are_clear_400s(
    api: tuple[TestClient, Any], change: dict[str, Any], fragment: str
) -> None:
    client, _ = api
    response = ask(client, **change)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def _called(*call_ids: str) -> dict[str, Any]:
    calls = [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in call_ids
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "18 C"}


USER = {"role": "user", "content": "Weather in Oslo and Bergen?"}


CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def test_allowed_tools_narrow_what_the_answer_may_call(api: tuple[TestClient, Any]) -> None:
    """OpenAI's `allowed_tools` choice was a 400 ("tool_choice.type: Input should be
    'function'"). The fake calls the first tool it is offered: get_time, once only it is
    allowed; an upstream is sent the narrowed list, which any OpenAI-compatible server reads."""
    client, _ = api
    allowed = {
        "mode": "required",
        "tools": [{"type": "function", "function": {"name": "get_time"}}],
    }
    choice = {"type": "allowed_tools", "allowed_tools": allowed}
    response = ask(client, tools=[WEATHER, CLOCK], tool_choice=choice)
    assert response.status_code == 200, response.text
    (call,) = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time"
    request = ChatRequest.model_validate(
        {"model": "m", "messages": [USER], "tools": [WEATHER, CLOCK], "tool_choice": choice}
    )
    sent = request.openai_body()
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_time"]
    assert sent["tool_choice"] == "required"
    allowed["tools"] = [{"type": "function", "function": {"name": "get_date"}}]
    refused = ask(client, tools=[WEATHER, CLOCK], tool_choice=choice)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "tool_choice.allowed_tools.tools"
    assert "'get_date', which is not among the tools" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("messages", "param", "fragment"),
    [
        ([USER, _result("c1")], "messages.1.role", "must be a response to a preceding"),
        (
            [USER, _called("c1"), _result("c1"), USER, _result("c1")],
            "messages.4.role",
            "must be a response to a preceding",
        ),
        (
            [USER, _called("c1"), _result("c2")],
            "messages.2.tool_call_id",
            "'tool_call_id' of 'c2' not found in 'tool_calls' of the message at messages.1",
        ),
        (
            [USER, _called("c1", "c2"), _result("c2"), USER],
            "messages.1.role",
            "The following tool_call_ids did not have response messages: c1",
        ),
        ([USER, _called("c1")], "messages.1.role", "did not have response messages: c1"),
    ],
)
def test_tool_results_that_answer_no_call_are_400s_as_openai_has_them(
    api: tuple[TestClient, Any], messages: list[dict[str, Any]], param: str, fragment: str
) -> None:
    """A local model would read a result that answers nothing, and the same conversation
    was a 400 only when routed to the cloud."""
    client, _ = api
    response = ask(client, messages=messages)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]
    answered = [USER, _called("c1", "c2"), _result("c2"), _result("c1"), USER]
    assert ask(client, messages=answered).status_code == 200  # in any order


def test_no_model_that_can_call_tools_is_a_clear_400(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    for model in settings.models:
        model.tools = False  # type: ignore[union-attr]
    client, _ = fake_client(settings)
    with client:
        response = ask(client)
    assert response.status_code == 400
    assert "no configured model can call tools" in response.json()["error"]["message"]


def test_pii_in_arguments_stays_home_and_comes_back_restored(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    history = [
        {"role": "user", "content": f"Mail {EMAIL} the forecast"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"to": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        {"role": "user", "content": f"Now mail {EMAIL} again"},
    ]
    for stream in (False, True):
        response = ask(client, messages=history, stream=stream)
        assert response.status_code == 200, response.text
        sent = fake_backend(gateway, "big").requests[-1]
        assert isinstance(sent, ChatRequest)
        assert EMAIL not in sent.model_dump_json()  # content and earlier tool-call arguments
        assert "<EMAIL_ADDRESS_1>" in sent.messages[1].tool_calls[0].function.arguments  # type: ignore[index]
        if stream:
            pieces = tool_call_pieces(response.text)
            arguments = "".join(piece["function"]["arguments"] for piece in pieces)
        else:
            call = response.json()["choices"][0]["message"]["tool_calls"][0]
            arguments = call["function"]["arguments"]
        assert json.loads(arguments) == {"input": f"Now mail {EMAIL} again"}


def test_restored_values_keep_tool_arguments_valid_json() -> None:
    redaction = Redaction({"<LOCATION_1>": 'Flat 2 "B"\n1 Main St'})
    arguments = '{"address": "<LOCATION_1>"}'
    restored = redaction.restore(arguments, in_json_string=True)
    assert json.loads(restored) == {"address": 'Flat 2 "B"\n1 Main St'}
    restorer = redaction.stream_restorer(in_json_string=True)
    pieces = [restorer.feed(part) for part in ('{"address": "<LOC', 'ATION_1>"}')]
    assert json.loads("".join(pieces) + restorer.flush()) == {"address": 'Flat 2 "B"\n1 Main St'}


def local_request(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER],
            **extra,
        }
    )


def test_a_local_model_is_told_the_tools_and_sees_earlier_calls_as_text() -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    ]
    turns = local_tools.prompt_messages(local_request(messages=history))
    assert turns[0]["role"] == "system"
    assert turns[0]["content"].startswith("Be brief.\n\nYou can call tools.")
    assert '"name": "get_weather"' in turns[0]["content"]
    assert turns[2] == {
        "role": "assistant",
        "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    }
    assert turns[3] == {
        "role": "user",
        "content": 'Result of get_weather({"city": "Paris"}): 18 C\n\n'
        "Answer the user from these results.",
    }
    assert local_tools.prompt_messages(local_request(tool_choice="none"))[0]["role"] == "user"


def test_a_local_model_reads_text_parts_as_lines() -> None:
    """Glued, "When is the kettle" + "descaled?" reached the model as "kettledescaled?"."""
    parts = [{"type": "text", "text": "When is the kettle"}, {"type": "text", "text": "descaled?"}]
    request = local_request(messages=[{"role": "user", "content": parts}])
    assert local_tools.prompt_messages(request)[-1]["content"] == "When is the kettle\ndescaled?"


def test_a_local_answer_that_is_a_call_becomes_one() -> None:
    request = local_request()
    call = Completion(text=' {"name": "get_weather", "arguments": {"city": "Oslo"}}')
    converted = local_tools.as_tool_call(request, call)
    assert (converted.text, converted.finish_reason) == ("", "tool_calls")
    (tool_call,) = converted.tool_calls or []
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}
    for text in ("It is sunny.", '{"name": "get_weath', '{"name": "other", "arguments": {}}'):
        assert local_tools.as_tool_call(request, Completion(text=text)).text == text


TWO_CALLS = (
    '[{"name": "get_weather", "arguments": {"city": "Oslo"}},'
    ' {"name": "get_weather", "arguments": {"city": "Paris"}}]'
)


def test_a_local_answer_may_call_several_tools_at_once_unless_told_not_to() -> None:
    """Qwen2.5-Coder asked about two cities wrote an array of calls (fenced as code, which
    reached the client as text): now an array is calls, as OpenAI's parallel tool calls."""
    converted = local_tools.as_tool_call(local_request(), Completion(text=TWO_CALLS))
    assert [json.loads(c.function.arguments) for c in converted.tool_calls or []] == [
        {"city": "Oslo"},
        {"city": "Paris"},
    ]
    assert len({c.id for c in converted.tool_calls or []}) == 2
    one_at_a_time = local_request(parallel_tool_calls=False)
    assert local_tools.as_tool_call(one_at_a_time, Completion(text=TWO_CALLS)).text == TWO_CALLS
    told = local_tools.prompt_messages(local_request())[0]["content"]
    assert "To call several at once, answer with only a JSON array" in told
    assert "several" not in local_tools.prompt_messages(one_at_a_time)[0]["content"]


def test_the_results_of_one_turns_calls_are_one_turn_naming_each_call() -> None:
    """As "Tool result (call_1): ..." turns, Qwen2.5-Coder made the same calls again; the
    text before an earlier call taught it to write text, then a call (prose to the grammar)."""
    calls = [
        {"id": f"c{i}", "function": {"name": "get_weather", "arguments": json.dumps(args)}}
        for i, args in enumerate([{"city": "Oslo"}, {"city": "Paris"}])
    ]
    history = [
        {"role": "user", "content": "Weather in Oslo and Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "c0", "content": "3 C"},
    ]
    turns = local_tools.prompt_messages(local_request(messages=history))
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert "Let me check." not in turns[2]["content"]
    assert turns[3]["content"] == (
        'Result of get_weather({"city": "Paris"}): 18 C\n'
        'Result of get_weather({"city": "Oslo"}): 3 C\n\n'
        "Answer the user from these results."  # Qwen2.5-Coder went on calling other tools
    )


def test_under_auto_a_model_is_told_the_answer_format_as_well_as_the_tools() -> None:
    """Told only the tools, Qwen2.5-Coder asked to translate "cat" with a JSON answer format
    called the weather tool."""
    answer = {"type": "object", "properties": {"answer": {"type": "string"}}}
    asked = local_request(
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": answer}}
    )
    told = local_tools.prompt_messages(asked)[0]["content"]
    assert (
        f"Otherwise answer with only a JSON value that fits this schema: {json.dumps(answer)}"
        in told
    )


def test_a_call_fenced_as_a_json_code_block_is_a_call() -> None:
    fenced = Completion(text=f"```json\n{TWO_CALLS}\n```")
    converted = local_tools.as_tool_call(local_request(), fenced)
    assert [c.function.name for c in converted.tool_calls or []] == ["get_weather"] * 2
    for begun in ("`", "```", "```js", "```json\n", "```json\n[", "{"):
        assert local_tools.may_be_a_call(begun), begun  # a stream holds it
    for begun in ("It", "`x`", "```python", "```json\nfoo", "```\nprint"):
        assert not local_tools.may_be_a_call(begun), begun  # prose: streamed at once


async def test_a_streamed_answer_is_held_until_it_is_prose_or_whole_calls() -> None:
    from smallfirst.backends.llamacpp import _calls_or_prose

    async def streamed(*pieces: str) -> list[Chunk]:
        async def chunks() -> AsyncIterator[Chunk]:
            for piece in pieces[:-1]:
                yield Chunk(text=piece)
            yield Chunk(text=pieces[-1], finish_reason="stop")  # as the engine ends an answer

        return [chunk async for chunk in _calls_or_prose(local_request(), chunks())]

    calls = await streamed("```", "json\n", TWO_CALLS[:30], TWO_CALLS[30:], "\n```")
    deltas = [delta for chunk in calls for delta in chunk.tool_calls or []]
    assert [d.index for d in deltas if d.name] == [0, 1]  # id and name first, as OpenAI's
    joined = completion_from_chunks(calls, with_logprobs=False).tool_calls or []
    assert [json.loads(c.function.arguments) for c in joined] == [
        call["arguments"] for call in json.loads(TWO_CALLS)
    ]
    assert not any(c.text for c in calls)
    assert calls[-1].finish_reason == "tool_calls"
    prose = await streamed("```", "py", "thon\nprint(1)")
    assert [c.text for c in prose] == ["```", "py", "thon\nprint(1)"]
    assert prose[-1].finish_reason == "stop"


def test_an_earlier_turn_that_called_several_tools_reads_as_the_array_it_was() -> None:
    calls = [
        {"id": f"c{i}", "function": {"name": "get_weather", "arguments": json.dumps(args)}}
        for i, args in enumerate([{"city": "Oslo"}, {"city": "Paris"}])
    ]
    history = [
        {"role": "user", "content": "Weather in Oslo and Paris?"},
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c0", "content": "3 C"},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    ]
    turns = local_tools.prompt_messages(local_request(messages=history))
    assert json.loads(turns[2]["content"]) == json.loads(TWO_CALLS)


def test_tools_that_must_stay_local_with_no_local_caller_say_why(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    response = ask(
        client, privacy="local_only", messages=[{"role": "user", "content": f"Mail {EMAIL}"}]
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "must stay on local tiers (PII (EMAIL_ADDRESS x1) stays on premises)" in message
    assert "no local model can call tools" in message


@pytest.mark.parametrize("router", ["rules", "cascade"])
def test_a_strong_call_budget_of_none_keeps_tools_off_the_strong_tier(
    tmp_path: Path, router: str
) -> None:
    """At `max_strong_share: 0` the cloud answered (and billed) every request with tools."""
    settings = fake_settings(tmp_path, routing={"router": router, "max_strong_share": 0})
    settings.models[0].tools = False  # type: ignore[union-attr]
    client, gateway = fake_client(settings)
    with client:
        refused = ask(client)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["param"]) == ("tools_not_supported", "tools")
        assert (
            "0% strong-call budget (max_strong_share) keeps it below the cloud"
            in (error["message"])
        )
        assert fake_backend(gateway, "big").requests == []
        assert ask(client, max_strong_share=0.5).json()["model"] == "big"


def test_under_a_strong_call_budget_of_none_a_model_below_the_strong_tier_calls_tools(
    api: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, _ = api
    assert ask(client, max_strong_share=0).status_code == 400
    settings = fake_settings(tmp_path)
    settings.models[0].tools = False  # type: ignore[union-attr]
    settings.models.append(
        settings.models[1].model_copy(update={"id": "mid", "tier": "onprem", "tools": True})
    )
    with_mid, _ = fake_client(settings)
    with with_mid:
        assert ask(with_mid, max_strong_share=0).json()["model"] == "mid"
        assert ask(with_mid, model="big", max_strong_share=0).json()["model"] == "big"
