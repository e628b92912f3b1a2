"""Gateways with fake models routed by a given config, and the requests the routing tests send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from smallfirst.errors import BeyondLocalGrammar, ContextLengthExceeded
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings


def routed_client(tmp_path: Path, routing: dict[str, Any]) -> Iterator[tuple[TestClient, Any]]:
    settings = fake_settings(tmp_path, routing=routing)
    client, gateway = fake_client(settings)
    with client:
        yield client, gateway


def ask(client: TestClient, text: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = chat_body("auto", messages=[{"role": "user", "content": text}], **extra)
    return client.post("/v1/chat/completions", json=body, headers=headers)


def too_long() -> ContextLengthExceeded:
    return ContextLengthExceeded("This model's maximum context length is 2048 tokens.")


# A schema an upstream enforces itself, beyond the local grammar (a word boundary).
WORD_CODE = {
    "type": "json_schema",
    "json_schema": {
        "name": "c",
        "schema": {"type": "object", "properties": {"code": {"type": "string", "pattern": r"\b"}}},
    },
}


def beyond_the_grammar() -> BeyondLocalGrammar:
    """What a local model says of `WORD_CODE`."""
    return BeyondLocalGrammar(
        "Invalid schema for response_format 'c' at properties.code.pattern: pattern"
        r' "\b": \b is not supported by the local grammar.',
        param="response_format.json_schema.schema.properties.code.pattern",
    )


def big_answers_what_tiny_cannot_hold(client: TestClient, gateway: Any, text: str) -> Any:
    fake_backend(gateway, "tiny").queue(too_long())
    response = ask(client, text)
    assert response.status_code == 200
    assert response.json()["model"] == "big"
    return response
