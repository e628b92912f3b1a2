"""Tool calling through real processes: the official openai client, a gateway with the real
bundled model (edge, cannot call tools) and a real second server as the cloud tier that records
what it received (`log_prompts: true`). The cloud's fake model calls the offered tool with the
last user text as `{"input": ...}`, so its arguments show what the cloud saw."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.helpers import WEATHER_WITH_DEFS
from tests.integration.conftest import (
    Server,
    cloud_model,
    fake_upstream_config,
    openai_client,
    start_server,
)

pytestmark = pytest.mark.integration
EMAIL = "maria.gonzalez@example.org"
MANAGER = "Tom Baker"
ASK = f"Send {EMAIL} the minutes of today's meeting."
SEND_EMAIL = {
    "type": "function",
    "function": {
        "name": "send_email",
        "description": f"Send an e-mail. Copies go to the office manager, {MANAGER}.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    recorder_config = {**fake_upstream_config("recorder", "Done."), "log_prompts": True}
    recorder = start_server(recorder_config, tmp_path_factory.mktemp("recorder"))
    config = {
        "models": [
            {"id": "smollm2-135m", "tier": "edge", "context_length": 2048},
            cloud_model("cloud-model", recorder, "recorder"),
        ]
    }
    gateway = start_server(config, tmp_path_factory.mktemp("gateway"))
    yield gateway, recorder
    gateway.stop()
    recorder.stop()


def test_tool_loop_with_pii_never_shows_the_cloud_a_value(servers: tuple[Server, Server]) -> None:
    gateway, recorder = servers
    client = openai_client(gateway)
    messages: list[object] = [{"role": "user", "content": ASK}]
    first = client.chat.completions.create(model="auto", messages=messages, tools=[SEND_EMAIL])  # type: ignore[arg-type]
    assert first.model == "cloud-model"
    assert first.choices[0].finish_reason == "tool_calls"
    call = (first.choices[0].message.tool_calls or [])[0]
    assert json.loads(call.function.arguments) == {"input": ASK}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message,  # the SDK object, appended as it came
        {"role": "tool", "tool_call_id": call.id, "content": "sent"},
    ]
    final = client.chat.completions.create(model="auto", messages=messages, tools=[SEND_EMAIL])  # type: ignore[arg-type]
    assert final.choices[0].message.content == "Done."

    streamed = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": ASK}],
        tools=[SEND_EMAIL],  # type: ignore[list-item]
        stream=True,
    )
    arguments = "".join(
        tool.function.arguments or ""
        for event in streamed
        for choice in event.choices
        for tool in choice.delta.tool_calls or []
        if tool.function is not None
    )
    assert json.loads(arguments) == {"input": ASK}

    received = logged_prompts(recorder, expected=3)
    assert "[call send_email(" in received[1]  # the earlier tool call went up too, redacted
    for prompt in received:
        assert "<EMAIL_ADDRESS_1>" in prompt
        assert "the office manager, <PERSON_1>" in prompt  # the tool definition went up too
        for value in (EMAIL, "maria.gonzalez", MANAGER, "Baker"):
            assert value not in prompt


def logged_prompts(server: Server, expected: int) -> list[str]:
    """The prompts the server logged, once all `expected` rows are written (the log writer
    flushes every 0.2 s; a stream's row comes after its last byte)."""
    for _ in range(300):  # a hang guard with `eventually`'s bound (30 s), not a timing
        with sqlite3.connect(server.data_dir / "requests.db") as connection:
            rows = [row[0] for row in connection.execute("SELECT prompt FROM requests")]
        if len(rows) >= expected:
            break
        time.sleep(0.1)
    assert len(rows) == expected
    return rows


def test_the_local_model_asked_by_id_refuses_tools(servers: tuple[Server, Server]) -> None:
    gateway, _ = servers
    client = openai_client(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "hi"}],
            tools=[SEND_EMAIL],  # type: ignore[list-item]
        )
    assert refused.value.code == "tools_not_supported"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_the_bundled_model_calls_tools_when_configured_to(local_tools_gateway: Server) -> None:
    """The grammar makes any answer under tool_choice "required" a call that fits a declared
    tool's schema; what the 135M model puts in the arguments is its own affair."""
    client = openai_client(local_tools_gateway)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools = [WEATHER, SEND_EMAIL]
    reply = client.chat.completions.create(
        model="auto",
        messages=ask,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        max_tokens=200,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name in {"get_weather", "send_email"}  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert isinstance(arguments, dict)
    if call.function.name == "get_weather":  # type: ignore[union-attr]
        assert isinstance(arguments["city"], str)

    streamed = client.chat.completions.create(
        model="auto",
        messages=ask,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
        temperature=0,
        stream=True,
    )
    pieces = [
        tool for event in streamed for c in event.choices for tool in c.delta.tool_calls or []
    ]
    assert pieces[0].function is not None
    assert pieces[0].function.name == "get_weather"
    assert "city" in json.loads("".join(p.function.arguments or "" for p in pieces if p.function))

    follow_up = client.chat.completions.create(
        model="auto",
        messages=[
            *ask,
            reply.choices[0].message,
            {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
        ],  # type: ignore[list-item]
        tools=tools,  # type: ignore[arg-type]
        max_tokens=30,
    )
    # tool_choice "auto": the grammar lets the model write prose or call again
    assert follow_up.choices[0].finish_reason in {"stop", "length", "tool_calls"}


def test_a_tool_schema_the_grammar_cannot_express_is_a_clear_400(
    local_tools_gateway: Server,
) -> None:
    broken = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "$ref": "#/nowhere"}},
    }
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(local_tools_gateway).chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "hi"}],
            tools=[broken],  # type: ignore[list-item]
            tool_choice="required",
        )
    assert refused.value.param == "tools.0.function.parameters.$ref"
    assert str(refused.value).endswith(
        "Invalid schema for function 'lookup' at $ref: $ref \"#/nowhere\" points at nothing in"
        " this schema."
    )


SIZES = ['10" small', '14" large']  # a quote in a JSON value: the literal needs a backslash


def test_tool_schemas_with_defs_and_quotes_in_enums_make_calls(
    local_tools_gateway: Server,
) -> None:
    client = openai_client(local_tools_gateway)
    pizza = {
        "type": "function",
        "function": {
            "name": "order_pizza",
            "parameters": {
                "type": "object",
                "properties": {"size": {"type": "string", "enum": SIZES}},
                "required": ["size"],
            },
        },
    }
    for tool, check in ((WEATHER_WITH_DEFS, "unit"), (pizza, "size")):
        reply = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Call the tool."}],
            tools=[tool],  # type: ignore[list-item]
            tool_choice="required",
            max_tokens=60,
            temperature=0,
        )
        (call,) = reply.choices[0].message.tool_calls or []
        arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
        allowed = ["celsius", "fahrenheit"] if check == "unit" else SIZES
        assert arguments[check] in allowed


def test_a_patterns_escapes_are_honoured_and_the_server_lives(
    local_tools_gateway: Server,
) -> None:
    """`\\d` and `\\.` were no GBNF: llama.cpp refused the grammar (a 400), and a refused
    grammar in a sampler chain had taken the whole process down (SIGSEGV). Patterns are now
    rewritten for the grammar (`grammar_pattern.py`), and the answer fits the pattern."""
    size = {"type": "string", "pattern": "^\\d{1,3}\\.\\d$"}
    schema = {"type": "object", "properties": {"size": size}, "required": ["size"]}
    reply = openai_client(local_tools_gateway).chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "How big is a shoe, in inches?"}],
        max_tokens=24,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    answer = json.loads(reply.choices[0].message.content or "")
    assert re.fullmatch(r"\d{1,3}\.\d", answer["size"])
    assert httpx.get(f"{local_tools_gateway.url}/healthz").status_code == 200
