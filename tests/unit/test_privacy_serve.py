"""The privacy guard in the request path, with fake backends: what each tier receives, what
the client gets back, and what the log keeps."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from smallfirst.backends.openai_wire import upstream_error
from smallfirst.cli import app
from smallfirst.errors import UpstreamError
from smallfirst.logs import RequestRecord
from smallfirst.types import ChatRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings

NAME, EMAIL = "John Smith", "john.smith@example.com"
PROMPT = f"My name is {NAME} and my e-mail is {EMAIL}. Write me a welcome note."


def client_with(tmp_path: Path, **privacy: Any) -> Iterator[tuple[TestClient, Any]]:
    settings = fake_settings(tmp_path, privacy=privacy) if privacy else fake_settings(tmp_path)
    client, gateway = fake_client(settings)
    with client:
        yield client, gateway


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from client_with(tmp_path)


def ask(client: TestClient, model: str = "big", **extra: Any) -> Any:
    body = chat_body(model, messages=[{"role": "user", "content": PROMPT}], **extra)
    return client.post("/v1/chat/completions", json=body)


def sent_text(gateway: Any, model: str) -> str:
    request = fake_backend(gateway, model).requests[-1]
    assert isinstance(request, ChatRequest)
    return "\n".join(m.text for m in request.messages)


def test_cloud_gets_placeholders_and_the_client_gets_values(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue("Welcome <PERSON_1>! We will write to <EMAIL_ADDRESS_1>.")
    response = ask(client)
    upstream = sent_text(gateway, "big")
    assert NAME not in upstream
    assert EMAIL not in upstream
    assert "<PERSON_1>" in upstream
    assert "<EMAIL_ADDRESS_1>" in upstream
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer == f"Welcome {NAME}! We will write to {EMAIL}."


def test_redaction_is_restored_in_streams_too(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue("Dear <PERSON_1>, noted.")
    response = ask(client, stream=True)
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == f"Dear {NAME}, noted."


@pytest.mark.parametrize("stream", [False, True])
def test_an_html_answer_gets_its_values_back_from_escaped_placeholders(
    api: tuple[TestClient, Any], stream: bool
) -> None:
    """A model writing HTML escapes the brackets, or a browser hides `<PERSON_1>` as a tag."""
    client, gateway = api
    fake_backend(gateway, "big").queue("<p>Dear &lt;PERSON_1&gt;,</p>")
    response = ask(client, stream=stream)
    if stream:
        lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
        deltas = [json.loads(line)["choices"] for line in lines]
        text = "".join(c[0]["delta"].get("content") or "" for c in deltas if c)
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == f"<p>Dear {NAME},</p>"


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_answer_gets_its_values_back_escaped(
    api: tuple[TestClient, Any], stream: bool
) -> None:
    client, gateway = api
    address = "17 Greenhill Road\nOxford OX4 1AA"  # a line break: raw, it breaks the JSON
    fake_backend(gateway, "big").queue('{"ship_to": "<LOCATION_1>"}')
    messages = [{"role": "user", "content": f"Ship it to {address}, as JSON."}]
    body = chat_body(
        "big", messages=messages, response_format={"type": "json_object"}, stream=stream
    )
    response = client.post("/v1/chat/completions", json=body)
    if stream:
        chunks = [
            json.loads(line[6:])
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert json.loads(text) == {"ship_to": address}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_stop_sequences_reach_the_cloud_redacted(
    api: tuple[TestClient, Any], endpoint: str
) -> None:
    """A transcript's stop sequence names its speaker: it goes out with the prompt's
    placeholder for the name (the model writes the placeholder, and stops there)."""
    client, gateway = api
    stop = [f"\n{NAME}:", "\nAgent:"]
    if endpoint == "chat":
        client.post(
            "/v1/chat/completions",
            json=chat_body("big", stop=stop, messages=[{"role": "user", "content": PROMPT}]),
        )
    else:
        client.post("/v1/completions", json={"model": "big", "prompt": PROMPT, "stop": stop})
    sent = fake_backend(gateway, "big").requests[-1]
    assert sent.stop == ["\n<PERSON_1>:", "\nAgent:"]


def test_local_tiers_see_the_original(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    ask(client, "tiny")
    assert NAME in sent_text(gateway, "tiny")


def test_the_user_field_reaches_the_cloud_as_a_stable_pseudonym(
    api: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, gateway = api
    for model in ("big", "big", "tiny"):
        body = chat_body(model, user=EMAIL)  # no PII in the messages: the field alone counts
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    first, second = (r.user for r in fake_backend(gateway, "big").requests)
    assert first == second
    assert first is not None
    assert first.startswith("user-")
    assert EMAIL not in first
    assert fake_backend(gateway, "tiny").requests[-1].user == EMAIL  # edge: policy allow
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o777 == 0o600


def test_safety_identifier_and_prompt_cache_key_reach_the_cloud_pseudonymous(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    ids = {"safety_identifier": EMAIL, "prompt_cache_key": f"support-{EMAIL}"}
    for model in ("big", "big", "tiny"):
        assert client.post("/v1/chat/completions", json=chat_body(model, **ids)).status_code == 200
    first, second = fake_backend(gateway, "big").requests
    assert (first.safety_identifier, first.prompt_cache_key) == (
        second.safety_identifier,
        second.prompt_cache_key,
    )  # stable: the upstream can still tell users and cache groups apart
    assert first.safety_identifier is not None
    assert first.safety_identifier.startswith("id-")
    assert first.prompt_cache_key is not None
    assert first.prompt_cache_key.startswith("cache-")
    assert EMAIL not in first.safety_identifier + first.prompt_cache_key
    local = fake_backend(gateway, "tiny").requests[-1]
    assert (local.safety_identifier, local.prompt_cache_key) == (EMAIL, f"support-{EMAIL}")


def test_metadata_values_are_scanned_and_redacted_like_messages(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    body = chat_body("big", metadata={"customer": EMAIL, "ticket": "T-1042"})
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.metadata == {"customer": "<EMAIL_ADDRESS_1>", "ticket": "T-1042"}


def test_an_echoed_refusal_is_scanned_and_redacted_like_its_message(
    api: tuple[TestClient, Any],
) -> None:
    """It went to the cloud in clear, under every policy."""
    client, gateway = api
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "", "refusal": f"I cannot share {EMAIL}."},
        {"role": "user", "content": "ok, summarise the chat"},
    ]
    body = chat_body("big", messages=messages)
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert EMAIL not in sent.model_dump_json()
    assert sent.messages[1].refusal == "I cannot share <EMAIL_ADDRESS_1>."
    blocked = client.post("/v1/chat/completions", json=body | {"privacy": "block"})
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "pii_blocked"


def test_a_participant_name_that_names_a_person_reaches_the_cloud_as_its_label(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    messages = [
        {"role": "user", "name": "Maria_Gonzalez", "content": "I am Maria Gonzalez. Hi!"},
        {"role": "assistant", "name": "planner", "content": "Hello."},
        {"role": "user", "name": "tom-baker", "content": "Hi, me too."},
    ]
    assert (
        client.post("/v1/chat/completions", json=chat_body("big", messages=messages)).status_code
        == 200
    )
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    # the same value has the same label in the name and the placeholder in the text
    assert [m.name for m in sent.messages] == ["PERSON_1", "planner", "PERSON_2"]
    assert sent.messages[0].text == "I am <PERSON_1>. Hi!"
    local = fake_backend(gateway, "tiny")
    client.post("/v1/chat/completions", json=chat_body("tiny", messages=messages))
    assert [m.name for m in local.requests[-1].messages] == [
        "Maria_Gonzalez",
        "planner",
        "tom-baker",
    ]


def test_a_participant_name_that_is_an_email_address_reaches_the_cloud_as_its_label(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    messages = [{"role": "user", "name": EMAIL, "content": "Hi!"}]
    body = chat_body("big", messages=messages)
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert [m.name for m in sent.messages] == ["EMAIL_ADDRESS_1"]


def test_each_content_part_is_scanned_and_redacted_as_a_part(api: tuple[TestClient, Any]) -> None:
    """Parts are texts of their own: joined, an address at the end of one ran into the next
    part's first word ("...example.comThanks") and was not found."""
    client, gateway = api
    cached = {"mode": "explicit", "ttl": "12h"}
    parts = [
        {"type": "text", "text": f"Please mail {EMAIL}", "prompt_cache_breakpoint": cached},
        {"type": "text", "text": "Thanks for helping"},
    ]
    body = chat_body("big", messages=[{"role": "user", "content": parts}])
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1].openai_body()
    assert sent["messages"][0]["content"] == [
        {
            "type": "text",
            "text": "Please mail <EMAIL_ADDRESS_1>",
            "prompt_cache_breakpoint": cached,
        },
        {"type": "text", "text": "Thanks for helping"},
    ]
    blocked = client.post("/v1/chat/completions", json={**body, "privacy": "block"})
    assert blocked.status_code == 400


def test_values_in_json_tool_texts_are_found_and_read_as_their_escapes_say(
    api: tuple[TestClient, Any],
) -> None:
    """json.dumps writes "José" as Jos\\u00e9 and a line break as \\n: such values went to
    the cloud as written, or came back still escaped."""
    client, gateway = api
    guest, address = "José Álvarez-Núñez", "17 Greenhill Road\nOxford OX4 1AA"
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "book", "arguments": json.dumps({"guest": guest, "to": address})},
    }
    messages = [
        {"role": "user", "content": f"Book a table for {guest}, then ship to {address}."},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"booked_for": guest})},
    ]
    fake_backend(gateway, "big").queue("Booked for <PERSON_1>, shipping to <LOCATION_1>.")
    response = client.post("/v1/chat/completions", json=chat_body("big", messages=messages))
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    calls = [call for message in sent.messages for call in message.tool_calls or []]
    texts = [message.text for message in sent.messages] + [c.function.arguments for c in calls]
    for written in (guest, json.dumps(guest)[1:-1], "Greenhill", "Oxford"):
        assert not any(written in text for text in texts)
    assert json.loads(calls[0].function.arguments) == {"guest": "<PERSON_1>", "to": "<LOCATION_1>"}
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer == f"Booked for {guest}, shipping to {address}."


def test_a_user_message_that_is_json_is_read_as_json(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    pasted = json.dumps({"guest": "José Álvarez-Núñez", "room": 12})  # "Jos\\u00e9 ..."
    body = chat_body("big", messages=[{"role": "user", "content": pasted}])
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1].messages[0].text
    assert json.loads(sent) == {"guest": "<PERSON_1>", "room": 12}


def test_responses_input_parts_stay_parts_for_the_guard(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    parts = [
        {"type": "input_text", "text": f"Please mail {EMAIL}"},
        {"type": "input_text", "text": "Thanks for helping"},
    ]
    body = {"model": "big", "input": [{"role": "user", "content": parts}]}
    assert client.post("/v1/responses", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1].openai_body()
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "Please mail <EMAIL_ADDRESS_1>"},
        {"type": "text", "text": "Thanks for helping"},
    ]


ORDERS_TOOL = {
    "type": "function",
    "function": {
        "name": "find_orders",
        "description": f"Orders of a customer. Escalations go to {EMAIL}.",
        "parameters": {
            "type": "object",
            "properties": {
                "customer": {"type": "string", "enum": ["Maria Garcia", "Tom Baker"]},
                "description": {"type": "string", "description": "a note", "pattern": "^.+$"},
            },
            "required": ["customer"],
        },
    },
}


def test_tool_definitions_are_scanned_and_redacted_like_messages(
    api: tuple[TestClient, Any],
) -> None:
    client, gateway = api
    asked = "Find the orders of Maria Garcia."
    body = chat_body("big", messages=[{"role": "user", "content": asked}], tools=[ORDERS_TOOL])
    response = client.post("/v1/chat/completions", json=body)
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.tools is not None
    upstream = json.dumps(sent.tools[0].model_dump())
    assert EMAIL not in upstream
    assert "Maria Garcia" not in upstream
    assert "Tom Baker" not in upstream
    function = sent.tools[0].function
    assert function.description == "Orders of a customer. Escalations go to <EMAIL_ADDRESS_1>."
    assert function.parameters is not None
    properties = function.parameters["properties"]
    # the same value has the same placeholder in the messages and in the tools
    assert sent.messages[0].text == "Find the orders of <PERSON_1>."
    assert properties["customer"]["enum"][0] == "<PERSON_1>"
    # structure is kept: types, patterns, property names (even one called "description")
    assert (
        properties["description"]
        == ORDERS_TOOL["function"]["parameters"]["properties"]["description"]
    )
    assert function.parameters["required"] == ["customer"]
    call = response.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"input": asked}  # values restored


def test_each_of_many_schema_values_gets_its_own_placeholder(api: tuple[TestClient, Any]) -> None:
    # The schema's texts are scanned in one pass: each finding must land on its own value.
    client, gateway = api
    addresses = [f"agent{n}@example.com" for n in range(300)]
    tool = {
        "type": "function",
        "function": {
            "name": "assign",
            "parameters": {
                "type": "object",
                "properties": {"to": {"type": "string", "enum": ["nobody", *addresses]}},
            },
        },
    }
    body = chat_body("big", tools=[tool])
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.tools is not None
    assert sent.tools[0].function.parameters is not None
    enum = sent.tools[0].function.parameters["properties"]["to"]["enum"]
    assert enum == ["nobody", *(f"<EMAIL_ADDRESS_{n + 1}>" for n in range(300))]


def test_a_json_schema_is_scanned_and_redacted_too(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    schema = {"type": "object", "properties": {"to": {"type": "string", "default": EMAIL}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "mail", "schema": schema}}
    assert (
        client.post(
            "/v1/chat/completions", json=chat_body("big", response_format=response_format)
        ).status_code
        == 200
    )
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.response_format is not None
    assert sent.response_format.json_schema is not None
    sent_schema = sent.response_format.json_schema.schema_
    assert sent_schema["properties"]["to"] == {"type": "string", "default": "<EMAIL_ADDRESS_1>"}


def test_a_tool_definition_alone_keeps_a_request_local(tmp_path: Path) -> None:
    policy = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    for client, gateway in client_with(tmp_path, **policy):
        body = chat_body("auto", tools=[ORDERS_TOOL])  # "Hi there": no PII in the messages
        response = client.post(
            "/v1/chat/completions", json=body, headers={"x-smallfirst-route": "cloud"}
        )
        assert response.status_code == 200
        assert fake_backend(gateway, "big").requests == []


def test_local_only_keeps_pii_off_the_cloud(tmp_path: Path) -> None:
    policy = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    for client, gateway in client_with(tmp_path, **policy):
        body = chat_body("auto", messages=[{"role": "user", "content": PROMPT}])
        response = client.post(
            "/v1/chat/completions", json=body, headers={"x-smallfirst-route": "cloud"}
        )
        assert response.json()["model"] == "tiny"
        assert "stays on premises" in response.json()["smallfirst"]["reason"]
        assert fake_backend(gateway, "big").requests == []
        # asking for the cloud model by id is refused rather than leaking
        direct = ask(client, "big")
        assert direct.status_code == 400
        assert fake_backend(gateway, "big").requests == []


def test_the_logged_action_is_what_was_done_with_the_pii(tmp_path: Path) -> None:
    """QA: a request refused for its PII was logged `local_only` like one kept local, and a
    redacted copy sent to a cloud model that failed before a local one answered, `allow`."""
    policy = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    for client, gateway in client_with(tmp_path / "local", **policy):
        records: list[RequestRecord] = []
        gateway.ledger.add_observer(records.append)
        kept = chat_body("auto", messages=[{"role": "user", "content": PROMPT}])
        client.post("/v1/chat/completions", json=kept, headers={"x-smallfirst-route": "cloud"})
        assert ask(client, "big").status_code == 400
        assert [r.pii_action for r in records] == ["local_only", "block"]
    for client, gateway in client_with(tmp_path / "redact"):
        records = []
        gateway.ledger.add_observer(records.append)
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500"))
        routed = chat_body("auto", messages=[{"role": "user", "content": PROMPT}])
        response = client.post(
            "/v1/chat/completions", json=routed, headers={"x-smallfirst-route": "cloud"}
        )
        assert response.json()["model"] == "tiny"
        assert NAME not in sent_text(gateway, "big")
        assert [r.pii_action for r in records] == ["redact"]
        assert 'smallfirst_pii_events_total{action="redact"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("privacy", ["local_only", "block"])
def test_a_batch_with_a_refused_prompt_sends_none_of_its_prompts(
    api: tuple[TestClient, Any], privacy: str
) -> None:
    """Every prompt of a list is guarded before any is answered: the clean first prompt
    does not go out (and cost) while the second fails the batch."""
    client, gateway = api
    body = {"model": "big", "prompt": ["Summarize the report.", PROMPT], "privacy": privacy}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "pii_blocked"
    assert fake_backend(gateway, "big").requests == []


def test_block_names_types_never_values(tmp_path: Path) -> None:
    policy = {"tier_policy": {"edge": "block", "onprem": "block", "cloud": "block"}}
    for client, gateway in client_with(tmp_path, **policy):
        response = ask(client, "tiny")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "pii_blocked"
        assert "PERSON" in error["message"]
        assert "EMAIL_ADDRESS" in error["message"]
        assert NAME not in error["message"]
        assert EMAIL not in error["message"]
        assert fake_backend(gateway, "tiny").requests == []


def test_per_request_override_can_tighten(api: tuple[TestClient, Any]) -> None:
    client, gateway = api
    response = ask(client, "tiny", privacy="block")
    assert response.status_code == 400
    assert fake_backend(gateway, "tiny").requests == []


def test_audit_has_types_counts_and_action_but_no_values(tmp_path: Path) -> None:
    for client, gateway in client_with(tmp_path):
        ask(client)
        metrics = client.get("/metrics").text
        gateway.request_log.close()
    assert 'smallfirst_pii_events_total{action="redact"} 1.0' in metrics
    connection = sqlite3.connect(tmp_path / "requests.db")
    row = connection.execute("SELECT pii_entities, pii_action FROM requests").fetchone()
    assert json.loads(row[0]) == {"EMAIL_ADDRESS": 1, "PERSON": 1}
    assert row[1] == "redact"
    dump = "\n".join(connection.iterdump())
    assert NAME not in dump
    assert EMAIL not in dump


@pytest.mark.parametrize(
    ("privacy", "fragment"),
    [
        ("block", "it contains EMAIL_ADDRESS x1, PERSON x1"),  # the guard read the ids' text
        ("redact", "a prompt of token ids cannot be redacted: send it as text"),
    ],
)
def test_a_prompt_of_token_ids_is_guarded_as_its_text(
    api: tuple[TestClient, Any], privacy: str, fragment: str
) -> None:
    client, gateway = api
    ids = list(PROMPT.encode())  # the fake local tokenizer: one token per byte
    body = {"model": "tiny", "prompt": ids, "max_tokens": 4, "privacy": privacy}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert fake_backend(gateway, "tiny").requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_upstreams_error_quoting_the_request_gets_the_clients_values_back(
    api: tuple[TestClient, Any], stream: bool
) -> None:
    """The client read its own request quoted as `<EMAIL_ADDRESS_1>`. Only that client gets
    the values back: the log keeps the upstream's summary."""
    client, gateway = api
    quoted = "cannot send mail to '<EMAIL_ADDRESS_1>' for <PERSON_1>"
    fake_backend(gateway, "big").queue(upstream_error("big", 400, {}, quoted))
    response = ask(client, stream=stream)
    told = response.json()["error"]["message"]
    assert f"cannot send mail to '{EMAIL}' for {NAME}" in told
    gateway.request_log.close()
    logged = sqlite3.connect(gateway.settings.resolved_data_dir / "requests.db").execute(
        "SELECT group_concat(route_reason) || group_concat(error_code) FROM requests"
    )
    assert EMAIL not in str(logged.fetchone())


def test_a_damaged_pseudonym_key_is_refused_never_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, served: list[Any]
) -> None:
    """An empty key file (a crash before its bytes reached the disk) was an HMAC key: the
    pseudonym of an e-mail address was one anyone could compute."""
    key = tmp_path / "pseudonym.key"
    key.touch()
    problem = (
        f"the pseudonym key {key} is damaged (0 bytes, not 32): delete it to have a new one"
        " made (the pseudonyms sent upstream before then change)"
    )
    for client, gateway in client_with(tmp_path):
        refused = client.post("/v1/chat/completions", json=chat_body("big", user=EMAIL))
        assert refused.status_code == 500
        assert fake_backend(gateway, "big").requests == []
    assert problem in caplog.text
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    result = CliRunner().invoke(app, ["serve", "-c", str(config)])
    assert (result.exit_code, result.output) == (1, f"Error: {problem}\n")
    assert served == []
