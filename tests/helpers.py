"""Builders shared by the hermetic tests: settings with fake models, an app around them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.fake import FakeBackend
from smallfirst.config import Settings
from smallfirst.logs import RequestLog
from smallfirst.routing.health import ModelHealth
from smallfirst.server import create_app
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest

if TYPE_CHECKING:
    from smallfirst.privacy import PiiDetector
    from smallfirst.privacy.patterns import RuleFinder

# The Host tests send (TestClient's own "testserver" is a name a key-less server refuses).
LOOPBACK = "http://127.0.0.1"


def fake_settings(tmp_path: Path, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path),
        "models": [
            {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hello from tiny."]},
            {
                "id": "big",
                "tier": "cloud",
                "backend": "fake",
                "replies": ["Hello from big."],
                "input_cost_per_1m": 2.0,
                "output_cost_per_1m": 8.0,
            },
        ],
    }
    raw.update(overrides)
    return Settings.model_validate(raw)


def fake_client(
    settings: Settings, health: ModelHealth | None = None
) -> tuple[TestClient, Gateway]:
    log = RequestLog(settings.resolved_data_dir / "requests.db")
    gateway = Gateway(settings, request_log=log, health=health)
    return TestClient(create_app(settings, gateway, warm_up=False), base_url=LOOPBACK), gateway


def keyed_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: str
) -> tuple[TestClient, Gateway]:
    """A gateway bound off loopback, so that API keys (`keys`, comma-separated) are required."""
    monkeypatch.setenv("SMALLFIRST_API_KEYS", keys)
    return fake_client(fake_settings(tmp_path, server={"host": "0.0.0.0"}))


def two_keys_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[TestClient, dict[str, str], dict[str, str]]:
    """A gateway that requires API keys, and the headers of its two keys' clients."""
    client, _ = keyed_client(tmp_path, monkeypatch, "key-one,key-two")
    one, two = ({"authorization": f"Bearer key-{n}"} for n in ("one", "two"))
    return client, one, two


def fake_backend(gateway: Gateway, model_id: str) -> FakeBackend:
    backend = gateway.backends[model_id]
    assert isinstance(backend, FakeBackend)
    return backend


def chat_body(model: str = "tiny", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi there"}], **extra}


# A tool as pydantic writes a model with an enum field (`openai.pydantic_function_tool`).
WEATHER_WITH_DEFS = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "$defs": {"Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"}},
            "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
            "required": ["city", "unit"],
            "type": "object",
        },
    },
}


def found_in(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    """(entity type, value as written) of each finding in `text`."""
    return [(f.entity_type, f.value_in(text)) for f in detector.inspect(text)]


def matched_texts(finder: RuleFinder, text: str, *, min_score: float = 0.0) -> list[str]:
    """The texts of `text` that a rule's matches cover, those scoring `min_score` or more (the
    guard keeps those of DEFAULT_SCORE_THRESHOLD and over)."""
    return [text[m.start : m.end] for m in finder(text) if m.score >= min_score]


def found_of_types(detector: PiiDetector, text: str, *types: str) -> list[str]:
    """The values as written of the findings in `text` of one of `types`."""
    return [f.value_in(text) for f in detector.inspect(text) if f.entity_type in types]


def redacted_round_trip(
    client: TestClient, gateway: Gateway, template: str, value: str, entity_type: str
) -> None:
    """`template` with `value` in it goes to the cloud model `big` as `template` with the
    value's placeholder, and the answer naming the placeholder comes back with the value as
    it was written."""
    placeholder = f"<{entity_type}_1>"
    fake_backend(gateway, "big").queue(f"Noted: {placeholder}.")
    messages = [{"role": "user", "content": template.format(value)}]
    response = client.post("/v1/chat/completions", json=chat_body("big", messages=messages))
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.messages[0].text == template.format(placeholder)
    assert response.json()["choices"][0]["message"]["content"] == f"Noted: {value}."


# A function tool as the Responses API writes it (flat: no `function` wrapper).
RESPONSES_WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"input": {"type": "string"}}},
}


async def until(check: Callable[[], bool]) -> None:
    """A hang guard, not a timing: wait on the event loop until `check()` holds (~10 s)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came true")


def eventually(check: Callable[[], bool]) -> bool:
    """A hang guard, not a timing: the log's writers flush and read every 0.05 s with a
    budget (0.2 s without)."""
    for _ in range(600):
        if check():
            return True
        time.sleep(0.05)
    return False


def post_scope(path: str) -> dict[str, Any]:
    """An ASGI scope of a JSON POST to `path` from a loopback client, for tests that drive the
    app by hand (to leave at a moment of their choosing)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
