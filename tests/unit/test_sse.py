"""Streaming exactly as OpenAI frames it."""

import json
from pathlib import Path

from smallfirst.errors import UpstreamError
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings


def events(raw: str) -> list[str]:
    assert raw.endswith("\n\n")
    frames = raw.split("\n\n")[:-1]
    assert all(f.startswith("data: ") for f in frames)
    return [f.removeprefix("data: ") for f in frames]


def test_chat_stream_frames_and_usage(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        body = chat_body(stream=True, stream_options={"include_usage": True})
        response = client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-smallfirst-model"] == "tiny"
    frames = events(response.text)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello from tiny."
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1
    assert finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_key(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        response = client.post("/v1/chat/completions", json=chat_body(stream=True))
    chunks = [json.loads(f) for f in events(response.text)[:-1]]
    assert all("usage" not in c for c in chunks)


def test_text_completion_stream(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        body = {"model": "tiny", "prompt": "Say", "stream": True}
        response = client.post("/v1/completions", json=body)
    frames = events(response.text)
    chunks = [json.loads(f) for f in frames[:-1]]
    assert frames[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello from tiny."
    assert {c["object"] for c in chunks} == {"text_completion"}


def test_error_before_first_token_is_an_http_error(tmp_path: Path) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    fake_backend(gateway, "big").queue(UpstreamError("big: cannot reach upstream"))
    with client:
        response = client.post("/v1/chat/completions", json=chat_body("big", stream=True))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
