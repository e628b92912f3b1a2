"""Stored responses through the openai SDK against real servers: a conversation begun on the
bundled model goes on at a remote tier by `previous_response_id`, which sees the earlier
turn's values only as placeholders (it records what it received: `log_prompts: true`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import openai
import pytest

from tests.integration.conftest import (
    cloud_model,
    fake_upstream_config,
    openai_client,
    start_server,
)

pytestmark = pytest.mark.integration
EMAIL = "maria.gonzalez@example.org"


def test_a_chain_begun_locally_goes_on_remotely_redacted_and_reads_back(tmp_path: Path) -> None:
    recorder_config = fake_upstream_config("recorder", "I will write to <EMAIL_ADDRESS_1>.")
    recorder = start_server({**recorder_config, "log_prompts": True}, tmp_path / "recorder")
    config = {
        "models": [
            {"id": "smollm2-135m", "tier": "edge", "context_length": 2048},
            cloud_model("cloud-model", recorder, "recorder"),
        ]
    }
    gateway = start_server(config, tmp_path / "gateway")
    try:
        sdk = openai_client(gateway)
        first = sdk.responses.create(
            model="smollm2-135m", input=f"My e-mail is {EMAIL}.", max_output_tokens=8
        )
        assert first.store is True
        second = sdk.responses.create(
            model="cloud-model", input="Where will you write?", previous_response_id=first.id
        )
        assert second.output_text == f"I will write to {EMAIL}."
        assert second.previous_response_id == first.id
        events = sdk.responses.create(
            model="cloud-model", input="Once more?", previous_response_id=second.id, stream=True
        )
        (third,) = [e.response for e in events if e.type == "response.completed"]
        assert sdk.responses.retrieve(second.id).model_dump() == second.model_dump()
        assert sdk.responses.retrieve(third.id).model_dump() == third.model_dump()
        items = list(sdk.responses.input_items.list(third.id, order="asc", limit=2))
        assert [getattr(item, "role", None) for item in items] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert sdk.responses.delete(first.id) is None
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.responses.create(model="cloud-model", input="Hi", previous_response_id=first.id)
        assert missing.value.code == "previous_response_not_found"
    finally:
        gateway.stop()
        recorder.stop()
    with sqlite3.connect(recorder.data_dir / "requests.db") as connection:
        received = [row[0] for row in connection.execute("SELECT prompt FROM requests")]
    assert len(received) == 2
    for prompt in received:
        assert EMAIL not in prompt
        assert "<EMAIL_ADDRESS_1>" in prompt


def test_a_long_chain_goes_on_with_truncation_auto_and_is_refused_without(
    tmp_path: Path,
) -> None:
    """The bundled model at 512 tokens: a chain by `previous_response_id` outgrows it by the
    fifth turn, even if every answer is one token (each question is over 100 tokens); with
    `truncation="auto"` its oldest turns go, as few as the model's own count says, and the
    stored conversation stays whole."""
    config = {"models": [{"id": "smollm2-135m", "tier": "edge", "context_length": 512}]}
    gateway = start_server(config, tmp_path / "gateway")
    try:
        sdk = openai_client(gateway)
        question = "Tell me a fact about the number {}. " + "Some padding words here. " * 20
        previous, refused = None, None
        for turn in range(6):
            asked = {"model": "smollm2-135m", "max_output_tokens": 40, "truncation": "auto"}
            if previous is not None:
                asked["previous_response_id"] = previous.id
                try:  # the same turn without truncation
                    sdk.responses.create(**{**asked, "truncation": "disabled"}, input="Again?")
                except openai.BadRequestError as error:
                    refused = error
            previous = sdk.responses.create(**asked, input=question.format(turn))
            assert previous.truncation == "auto"
            assert previous.usage is not None
            assert previous.usage.input_tokens + 40 <= 512
        assert refused is not None
        assert refused.code == "context_length_exceeded"
        reason = previous.model_dump()["smallfirst"]["reason"]
        assert "so truncation 'auto' dropped its" in reason
        items = list(sdk.responses.input_items.list(previous.id, limit=100))
        assert len(items) == 6 + 5
    finally:
        gateway.stop()
