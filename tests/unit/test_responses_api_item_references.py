"""`item_reference` input items: an item of a stored response, named by its id, read as if the
client had sent it, for the API key that stored it only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from tests.helpers import (
    LOOPBACK,
    RESPONSES_WEATHER_TOOL,
    fake_client,
    fake_settings,
    two_keys_client,
)
from tests.unit.test_responses_api_stored import sent_messages


@pytest.fixture
def stored_api(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        yield client, gateway


def reference(item_id: str) -> dict[str, str]:
    return {"type": "item_reference", "id": item_id}


def test_a_referenced_item_is_read_and_listed_as_the_item_itself(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = stored_api
    first = client.post("/v1/responses", json={"model": "tiny", "input": "My name is Ada."}).json()
    asked_id = client.get(f"/v1/responses/{first['id']}/input_items").json()["first_id"]
    answer_id = first["output"][0]["id"]
    items = [reference(asked_id), {"id": answer_id}, {"role": "user", "content": "Who am I?"}]
    second = client.post("/v1/responses", json={"model": "tiny", "input": items})
    assert second.status_code == 200, second.text
    assert sent_messages(gateway) == [
        ("user", "My name is Ada."),
        ("assistant", "Hello from tiny."),
        ("user", "Who am I?"),
    ]
    listed = client.get(f"/v1/responses/{second.json()['id']}/input_items?order=asc").json()
    assert [item["id"] for item in listed["data"][:2]] == [asked_id, answer_id]
    assert listed["data"][1]["content"][0]["text"] == "Hello from tiny."


def test_an_item_not_stored_for_the_key_is_a_404(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, one, two = two_keys_client(tmp_path, monkeypatch)
    with client:
        body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}, headers=one)
        item_id = body.json()["output"][0]["id"]
        asked = {"model": "tiny", "input": [reference(item_id)]}
        assert client.post("/v1/responses", json=asked, headers=one).status_code == 200
        unknown = {"model": "tiny", "input": [reference(item_id.replace("_0", "_7"))]}
        for refused in (
            client.post("/v1/responses", json=asked, headers=two),  # another key's
            client.post("/v1/responses", json=unknown, headers=one),
            client.post(
                "/v1/responses", json={**asked, "input": [reference("msg_1")]}, headers=one
            ),
        ):
            assert refused.status_code == 404
            error = refused.json()["error"]
            assert (error["type"], error["param"]) == ("invalid_request_error", "input")
            assert error["message"].startswith("Item with id '")
        client.delete(f"/v1/responses/{body.json()['id']}", headers=one)
        assert client.post("/v1/responses", json=asked, headers=one).status_code == 404


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "item_reference"}, "input.0.id"),
        ({"type": "item_reference", "id": 7}, "input.0.id"),
        ({"type": "item_reference", "id": "msg_1_0", "role": "user"}, "input.0.role"),
    ],
)
def test_a_reference_without_an_id_or_with_other_fields_is_a_400(
    stored_api: tuple[TestClient, Gateway], item: dict[str, Any], param: str
) -> None:
    client, _ = stored_api
    response = client.post("/v1/responses", json={"model": "tiny", "input": [item]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_with_storing_off_a_reference_is_a_400(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, server={"store_responses": False}))
    with client:
        asked = {"model": "tiny", "input": [reference("msg_abc_0")]}
        refused = client.post("/v1/responses", json=asked)
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "input.0"
        assert "server.store_responses" in refused.json()["error"]["message"]


def test_the_openai_sdk_sends_a_reference_to_a_function_call(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    """A client that keeps no items of its own answers a call by referring to it."""
    client, gateway = stored_api
    sdk = openai.OpenAI(base_url=f"{LOOPBACK}/v1", api_key="unused", http_client=client)
    tools: Any = [RESPONSES_WEATHER_TOOL]
    named: Any = {"type": "function", "name": "get_weather"}
    first = sdk.responses.create(
        model="big", input="Weather in Paris?", tools=tools, tool_choice=named
    )
    (call,) = first.output
    assert call.type == "function_call"
    second = sdk.responses.create(
        model="big",
        tools=tools,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "item_reference", "id": call.id or ""},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.status == "completed"
    assert [role for role, _ in sent_messages(gateway, "big")] == ["user", "assistant", "tool"]
