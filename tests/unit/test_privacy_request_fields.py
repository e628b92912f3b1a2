"""Fields of a request that go upstream beside the messages' texts: metadata keys, tool-call
ids, function names, a schema's property names and a response format's name. Each is
scanned, replaced by a pseudonym, or, where a placeholder would break the request, keeps it
on local tiers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from starlette.testclient import TestClient

from smallfirst import privacy_step
from smallfirst.privacy import PrivacyConfig, resolve_action
from smallfirst.privacy.detect import Finding
from smallfirst.types import ChatRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings

EMAIL = "ana.ruiz@flux.io"
PATTERN = r"^(ana\.ruiz@flux\.io|bob@flux\.io)$"
CLOUD = {"x-smallfirst-route": "cloud"}


def client_with(tmp_path: Path, **privacy: Any) -> Iterator[tuple[TestClient, Any]]:
    client, gateway = fake_client(fake_settings(tmp_path, privacy=privacy))
    with client:
        yield client, gateway


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from client_with(tmp_path, enabled=True)


def sent_to(gateway: Any, model: str) -> ChatRequest:
    sent = fake_backend(gateway, model).requests[-1]
    assert isinstance(sent, ChatRequest)
    return sent


def tool(name: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties or {"query": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def called(name: str, call_id: str = "call_1") -> list[dict[str, Any]]:
    """A conversation in which the assistant called `name`, and the tool answered."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
    return [
        {"role": "user", "content": "Please send the reminder."},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "sent"},
    ]


def test_a_metadata_key_is_scanned_and_redacted_like_its_value(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    body = chat_body("big", metadata={EMAIL: "vip", "ticket": "T-1042"})
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert sent_to(gateway, "big").metadata == {"<EMAIL_ADDRESS_1>": "vip", "ticket": "T-1042"}
    blocked = client.post("/v1/chat/completions", json=body | {"privacy": "block"})
    assert blocked.status_code == 400


def test_an_openapi_example_and_the_keys_of_a_default_reach_the_cloud_redacted(
    api: tuple[TestClient, Any],
) -> None:
    """Only a list of keywords was read: OpenAPI's `example` (tools made from an API's
    description carry it) and an object's keys in a `default` went upstream in clear."""
    client, gateway = api
    properties = {
        "to": {"type": "string", "format": "email", "example": EMAIL},
        "roles": {"type": "object", "default": {EMAIL: "owner"}},
    }
    body = chat_body("big", tools=[tool("share", properties)])
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    (sent,) = sent_to(gateway, "big").tools or []
    assert EMAIL not in sent.model_dump_json()
    assert sent.function.parameters is not None
    assert sent.function.parameters["properties"] == {
        "to": {"type": "string", "format": "email", "example": "<EMAIL_ADDRESS_1>"},
        "roles": {"type": "object", "default": {"<EMAIL_ADDRESS_1>": "owner"}},
    }


def test_a_tools_placeholders_are_the_same_on_every_turn_of_a_conversation(
    api: tuple[TestClient, Any],
) -> None:
    """Upstreams read (and cache) the tools before the messages. Numbered after the
    messages, the tool's address was <EMAIL_ADDRESS_1> on the first turn and
    <EMAIL_ADDRESS_2> once a message brought another address."""
    client, gateway = api
    share = tool("share", {"to": {"type": "string", "enum": ["bob@flux.io", "eve@flux.io"]}})
    turn = [{"role": "user", "content": "Share the minutes with the manager."}]
    sent_tools = []
    for messages in (
        turn,
        [*turn, {"role": "assistant", "content": "Who else?"}, {"role": "user", "content": EMAIL}],
    ):
        body = chat_body("big", messages=messages, tools=[share], tool_choice="none")
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        sent = sent_to(gateway, "big")
        sent_tools.append([t.model_dump() for t in sent.tools or []])
    assert sent_tools[0] == sent_tools[1]
    assert "<EMAIL_ADDRESS_1>" in json.dumps(sent_tools[0])
    assert sent.messages[-1].content == "<EMAIL_ADDRESS_3>"


async def test_a_models_copy_walks_each_tool_schema_once_to_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the tools' texts sit among those scanned (the prompt's head, numbered first)
    was found by a walk of its own: every schema walked a third time for each model asked."""
    _, gateway = fake_client(fake_settings(tmp_path, privacy={"enabled": True}))
    share = tool("share", {"to": {"type": "string", "example": EMAIL}})
    messages = [{"role": "user", "content": "Share it with bob@flux.io too."}]
    request = ChatRequest.model_validate(chat_body("big", messages=messages, tools=[share]))
    inspection = await gateway.privacy.inspect(request)
    walked: list[Any] = []
    walk = privacy_step.map_schema_texts

    def counted(schema: Any, visit: Callable[[str], str]) -> Any:
        walked.append(schema)
        return walk(schema, visit)

    monkeypatch.setattr(privacy_step, "map_schema_texts", counted)
    sent, guard = gateway.privacy.request_for(request, gateway.backends["big"].info(), inspection)
    assert guard is not None
    assert guard.action == "redact"
    assert len(walked) == 2  # read, then written with its placeholders
    assert isinstance(sent, ChatRequest)
    (sent_tool,) = sent.tools or []
    assert "<EMAIL_ADDRESS_1>" in sent_tool.model_dump_json()  # the head is numbered first
    assert sent.messages[0].content == "Share it with <EMAIL_ADDRESS_2> too."


def test_tool_call_ids_reach_the_cloud_as_paired_stable_pseudonyms(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    call_id = f"lookup-{EMAIL}"
    body = chat_body("big", messages=called("send_reminder", call_id))
    for _ in range(2):
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    first, second = fake_backend(gateway, "big").requests[-2:]
    assert isinstance(first, ChatRequest)
    assert EMAIL not in first.model_dump_json()
    (call,) = first.messages[1].tool_calls or []
    assert first.messages[2].tool_call_id == call.id  # still the call's result
    assert second.model_dump_json() == first.model_dump_json()  # the same on every turn
    assert client.post("/v1/chat/completions", json=body | {"model": "tiny"}).status_code == 200
    assert sent_to(gateway, "tiny").messages[2].tool_call_id == call_id


def test_a_pseudonymous_id_keeps_the_form_of_a_short_one(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    body = chat_body("big", messages=called("send_reminder", "D681PevKs"))  # Mistral's form
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent_id = sent_to(gateway, "big").messages[2].tool_call_id or ""
    assert sent_id != "D681PevKs"
    assert len(sent_id) == 9
    assert sent_id.isalnum()


@pytest.mark.parametrize(
    "body",
    [
        # a function the assistant called, named after an address (history names are free)
        chat_body("auto", messages=called(f"email_{EMAIL}")),
        # a function offered, named after the person the conversation is about
        chat_body(
            "auto",
            messages=[{"role": "user", "content": "I am Tomasz Kowalski, remind me at 5."}],
            tools=[tool("remind_Tomasz")],
        ),
        # a property named after an address
        chat_body("auto", tools=[tool("notify", {EMAIL: {"type": "boolean"}})]),
        # in the response format's schema
        chat_body(
            "auto",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"properties": {EMAIL: {}}}},
            },
        ),
        # a regular expression that spells an address out, in a tool's parameters
        chat_body("auto", tools=[tool("notify", {"to": {"type": "string", "pattern": PATTERN}})]),
        # and one of the response format's schema's pattern properties
        chat_body(
            "auto",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"patternProperties": {PATTERN: {}}}},
            },
        ),
    ],
)
def test_pii_in_a_name_that_cannot_be_redacted_keeps_the_request_local(
    api: tuple[TestClient, Any], body: dict[str, Any]
) -> None:
    client, gateway = api
    response = client.post("/v1/chat/completions", json=body, headers=CLOUD)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "tiny"
    assert "which cannot be redacted" in response.json()["smallfirst"]["reason"]
    direct = client.post("/v1/chat/completions", json=body | {"model": "big"})
    assert direct.status_code == 400
    assert "cannot be redacted" in direct.json()["error"]["message"]
    assert fake_backend(gateway, "big").requests == []


def test_a_name_that_cannot_be_redacted_goes_as_it_is_where_the_policy_allows(
    tmp_path: Path,
) -> None:
    policy = {"edge": "allow", "onprem": "allow", "cloud": "allow"}
    for client, gateway in client_with(tmp_path, tier_policy=policy):
        body = chat_body("big", messages=called(f"email_{EMAIL}"))
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        (call,) = sent_to(gateway, "big").messages[1].tool_calls or []
        assert call.function.name == f"email_{EMAIL}"


@pytest.mark.parametrize("name", ["wikipedia_search", "docker_run", "Search_Web", "GetWeather"])
def test_a_tool_name_the_ner_alone_calls_a_name_does_not_keep_a_request_local(
    api: tuple[TestClient, Any], name: str
) -> None:
    client, gateway = api
    body = chat_body("auto", tools=[tool(name)], tool_choice="none")
    response = client.post("/v1/chat/completions", json=body, headers=CLOUD)
    assert response.json()["model"] == "big"
    assert sent_to(gateway, "big").tools is not None


def test_a_pydantic_tools_class_name_as_its_title_does_not_keep_a_request_local(
    api: tuple[TestClient, Any],
) -> None:
    """`openai.pydantic_function_tool(GetWeather)` puts "GetWeather" in the schema's title as
    well as in the function's name: read as prose there, it was a person found in a text and
    so counted in the name, and every request with the tool was refused on the cloud."""

    class GetWeather(pydantic.BaseModel):
        city: str

    client, gateway = api
    body = chat_body("big", tools=[openai.pydantic_function_tool(GetWeather)])
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    (sent,) = sent_to(gateway, "big").tools or []
    assert sent.function.parameters is not None
    assert sent.function.parameters["title"] == "GetWeather"
    # a title in words is prose still, redacted as such
    prose = tool("f", {"city": {"type": "string", "title": "Ask Jane Doe"}})
    told = chat_body("big", messages=[{"role": "user", "content": "I am Jane Doe."}])
    assert client.post("/v1/chat/completions", json=told | {"tools": [prose]}).status_code == 200
    (sent,) = sent_to(gateway, "big").tools or []
    assert sent.function.parameters is not None
    assert sent.function.parameters["properties"]["city"]["title"] == "Ask <PERSON_1>"


def test_a_pattern_keeps_a_request_local_only_where_it_spells_a_value(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    shapes = {
        "email": {"type": "string", "pattern": r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"},
        "phone": {"type": "string", "pattern": r"^\+?[1-9]\d{1,14}$"},
        "day": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    }
    body = chat_body("auto", tools=[tool("notify", shapes)], tool_choice="none")
    response = client.post("/v1/chat/completions", json=body, headers=CLOUD)
    assert response.json()["model"] == "big"
    shapes["ip"] = {"type": "string", "pattern": r"^10\.20\.30\.40$"}
    body = chat_body("auto", tools=[tool("notify", shapes)], tool_choice="none")
    response = client.post("/v1/chat/completions", json=body, headers=CLOUD)
    assert response.json()["model"] == "tiny"
    assert "schema's pattern" in response.json()["smallfirst"]["reason"]


def test_a_pattern_naming_the_machine_itself_keeps_no_request_local(
    api: tuple[TestClient, Any],
) -> None:
    # loopback and unspecified addresses are every machine's own: no one's
    client, _ = api
    shapes = {
        "host": {"type": "string", "pattern": r"^(localhost|127\.0\.0\.1|::1)$"},
        "bind": {"type": "string", "pattern": r"^0\.0\.0\.0$"},
    }
    body = chat_body("auto", tools=[tool("serve", shapes)], tool_choice="none")
    response = client.post("/v1/chat/completions", json=body, headers=CLOUD)
    assert response.json()["model"] == "big"


def test_a_date_found_in_the_messages_does_not_count_in_a_property_name(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    messages = [{"role": "user", "content": "Show me the sales figures since 2024."}]
    parameters = {"total_2024": {"type": "number"}}
    body = chat_body("auto", messages=messages, tools=[tool("report", parameters)])
    response = client.post(
        "/v1/chat/completions", json=body | {"tool_choice": "none"}, headers=CLOUD
    )
    assert response.json()["model"] == "big"


def test_a_response_format_name_reaches_the_cloud_as_its_label(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    spec = {"name": "Maria_Gonzalez_report", "schema": {"type": "object"}}
    body = chat_body("big", response_format={"type": "json_schema", "json_schema": spec})
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = json.loads(sent_to(gateway, "big").model_dump_json())
    assert sent["response_format"]["json_schema"]["name"] == "PERSON_1_report"


def test_redact_becomes_local_only_when_the_pii_cannot_be_redacted() -> None:
    config, person = PrivacyConfig(), [Finding("PERSON", 0, 3, 0.9)]
    assert resolve_action(config, "cloud", person, redactable=False) == "local_only"
    assert resolve_action(config, "edge", person, redactable=False) == "allow"
    assert resolve_action(config, "cloud", person, "block", redactable=False) == "block"


def test_ids_are_pseudonymous_where_the_request_asks_for_redaction_of_an_allow_tier(
    tmp_path: Path,
) -> None:
    policy = {"edge": "allow", "onprem": "allow", "cloud": "allow"}
    for client, gateway in client_with(tmp_path, tier_policy=policy):
        messages = called("send_reminder", f"lookup-{EMAIL}")
        body = chat_body("big", messages=messages, privacy="redact", user=EMAIL)
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        sent = sent_to(gateway, "big")
        assert EMAIL not in sent.model_dump_json()  # neither the call's id nor the user
        (call,) = sent.messages[1].tool_calls or []
        assert sent.messages[2].tool_call_id == call.id


@pytest.mark.parametrize("cloud", ["local_only", "block"])
def test_ids_are_pseudonymous_for_a_tier_that_would_keep_pii_from_it(
    tmp_path: Path, cloud: str
) -> None:
    """A request whose messages hold no PII goes to a `local_only` (or `block`) cloud, but its
    user ids are not the client's: an address there reached the cloud as it was."""
    for client, gateway in client_with(tmp_path, tier_policy={"cloud": cloud}):
        ids = {"user": EMAIL, "safety_identifier": EMAIL, "prompt_cache_key": EMAIL}
        body = chat_body("big", **ids)
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        sent = sent_to(gateway, "big")
        assert EMAIL not in sent.model_dump_json()
        assert (sent.user or "").startswith("user-")
        assert [m.text for m in sent.messages] == ["Hi there"]  # nothing to redact there
