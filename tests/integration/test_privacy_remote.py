"""Redaction against a real second server that records what it received (its request log
with `log_prompts: true`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import cloud_model, fake_upstream_config, start_server

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
