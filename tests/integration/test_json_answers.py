"""JSON answers and seeds on the real bundled model behind a real gateway: a `json_schema`
answer is JSON, a schema its grammar cannot express is a 400 that says where, and every
`seed` samples the same answer again."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m"
PERSON = {  # strings short enough for the bundled model to close them
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "city": {"type": "string", "maxLength": 24},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


def chat(gateway: Server, **body: Any) -> httpx.Response:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=request, timeout=120)


def test_a_json_schema_answer_is_json_when_the_model_writes_a_line_break(
    gateway: Server,
) -> None:
    """QA's request: greedy, the model wrote "Madrid }" and a raw line break in the city's
    string, then closed it: finish_reason "stop", and `json.loads` said "Invalid control
    character"."""
    response = chat(
        gateway,
        messages=[{"role": "user", "content": "Extract: Maria Lopez is 34 and lives in Madrid."}],
        temperature=0,
        max_tokens=96,
        response_format={"type": "json_schema", "json_schema": {"name": "P", "schema": PERSON}},
    )
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert set(json.loads(choice["message"]["content"])) == {"name", "age", "city"}


def test_a_schema_the_grammar_cannot_express_is_a_400_naming_its_place(gateway: Server) -> None:
    banana = {"type": "object", "properties": {"a": {"type": "banana"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": banana}}
    refused = chat(gateway, max_tokens=2, response_format=fmt)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "response_format.json_schema.schema.properties.a.type"
    assert error["message"] == (
        "Invalid schema for response_format 'x' at properties.a.type: \"banana\" is not a JSON"
        " Schema type (one of string, number, integer, boolean, null, object, array)."
    )
    text = {"format": {"type": "json_schema", "name": "x", "schema": banana}}
    body = {"model": MODEL, "input": "hi", "max_output_tokens": 16, "text": text}
    responses = httpx.post(f"{gateway.url}/v1/responses", json=body, timeout=120)
    assert responses.status_code == 400
    assert responses.json()["error"]["param"] == "text.format.schema.properties.a.type"


def test_every_seed_samples_its_answer_again(gateway: Server) -> None:
    """llama.cpp's seeds are 32 bits: -1 and 4294967295 were its "random seed" (a new answer
    each time), and 0, 2**32 and 2**62 were one seed."""

    def sampled(seed: int) -> str:
        hot = {"temperature": 1.8, "top_p": 1.0, "max_tokens": 12, "seed": seed}
        response = chat(
            gateway, messages=[{"role": "user", "content": "Write a random word"}], **hot
        )
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])

    for seed in (-1, 2**32 - 1):
        assert len({sampled(seed) for _ in range(3)}) == 1, seed
    assert len({sampled(seed) for seed in (0, 2**32, 2**62)}) == 3
