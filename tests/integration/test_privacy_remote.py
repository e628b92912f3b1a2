"""Redaction against a real second server that records what it received (its request log
with `log_prompts: true`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, cloud_model, fake_upstream_config, start_server

pytestmark = pytest.mark.integration
NAME, EMAIL, CARD = "Maria Gonzalez", "maria.gonzalez@example.org", "4111 1111 1111 1111"
PROMPT = f"I am {NAME}, e-mail {EMAIL}, card {CARD}. Draft a short reply to my bank."


def test_remote_tier_never_sees_values_and_client_gets_them_back(tmp_path: Path) -> None:
    recorder_config = fake_upstream_config(
        "recorder", "Dear <PERSON_1>, about card <CREDIT_CARD_1>"
    )
    recorder = start_server({**recorder_config, "log_prompts": True}, tmp_path / "recorder")
    config = {
        "models": [
            {"id": "edge-fake", "tier": "edge", "backend": "fake", "replies": ["local"]},
            cloud_model("cloud-model", recorder, "recorder"),
        ]
    }
    gateway = start_server(config, tmp_path / "gateway")
    try:
        answers = []
        for stream in (False, True):
            response = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={
                    "model": "cloud-model",
                    "stream": stream,
                    "messages": [{"role": "user", "content": PROMPT}],
                },
                timeout=60,
            )
            assert response.status_code == 200, response.text
            answers.append(response.text)
    finally:
        gateway.stop()
        recorder.stop()
    assert f"Dear {NAME}, about card {CARD}" in answers[0]
    assert NAME in answers[1]
    assert "<PERSON_1>" not in answers[0] + answers[1]
    received = (
        sqlite3.connect(recorder.data_dir / "requests.db")
        .execute("SELECT prompt FROM requests")
        .fetchall()
    )
    assert len(received) == 2
    for (prompt,) in received:
        assert "<PERSON_1>" in prompt
        for value in (NAME, EMAIL, CARD, "Maria", "4111"):
            assert value not in prompt


MANAGER_EMAIL, NEW_EMAIL = "tomasz.kowalski@example.org", "ana.ruiz@example.net"
SHARE = {
    "type": "function",
    "function": {
        "name": "share",
        "description": "Share a document.",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "format": "email", "example": MANAGER_EMAIL},
                "roles": {"type": "object", "default": {MANAGER_EMAIL: "owner"}},
            },
        },
    },
}


def test_a_tools_example_values_never_reach_the_cloud_and_keep_their_placeholders(
    tmp_path: Path,
) -> None:
    """A second turn brings a new address: the tool definition goes up as it did on the
    first turn, and the call the cloud makes with a placeholder comes back with the value,
    whole and streamed."""
    recorder = start_server(
        {**fake_upstream_config("recorder", "unused"), "log_prompts": True}, tmp_path / "rec"
    )
    config = {
        "models": [
            {"id": "edge-fake", "tier": "edge", "backend": "fake", "replies": ["local"]},
            cloud_model("cloud-model", recorder, "recorder"),
        ]
    }
    gateway = start_server(config, tmp_path / "gateway")
    first = [{"role": "user", "content": "Share the minutes with the manager."}]
    second = [*first, {"role": "assistant", "content": "Anyone else?"}]
    second.append({"role": "user", "content": f"Also {NEW_EMAIL}"})
    try:
        arguments = [
            _call_arguments(gateway, {"messages": messages, "stream": stream})
            for messages, stream in ((first, False), (second, False), (second, True))
        ]
    finally:
        gateway.stop()
        recorder.stop()
    # the fake cloud calls the tool with the last user text, which it read with a placeholder
    assert arguments[1:] == [{"input": f"Also {NEW_EMAIL}"}] * 2
    with sqlite3.connect(recorder.data_dir / "requests.db") as connection:
        received = [row[0] for row in connection.execute("SELECT prompt FROM requests")]
    assert len(received) == 3
    tools_lines = [prompt.splitlines()[-1] for prompt in received]
    assert tools_lines[0] == tools_lines[1] == tools_lines[2]
    assert '"example": "<EMAIL_ADDRESS_1>"' in tools_lines[0]
    assert '{"<EMAIL_ADDRESS_1>": "owner"}' in tools_lines[0]
    for prompt in received:
        for value in (MANAGER_EMAIL, NEW_EMAIL, "kowalski", "ana.ruiz"):
            assert value not in prompt


def _call_arguments(gateway: Server, body: dict[str, Any]) -> Any:
    """The arguments of the tool call the cloud model answers `body` with, whole or streamed."""
    body = {"model": "cloud-model", "tools": [SHARE], **body}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    if not body["stream"]:
        return json.loads(
            response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        )
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    return json.loads(
        "".join(
            call["function"].get("arguments", "")
            for event in events
            for choice in event["choices"]
            for call in choice["delta"].get("tool_calls") or []
        )
    )
