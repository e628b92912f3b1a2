"""The openai_compat backend against real second servers on loopback (not mocks)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import Server, cloud_model, fake_upstream_config, start_server

pytestmark = pytest.mark.integration


def test_non_stream_pass_through(gateway: Server) -> None:
    raw = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "cloud-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert raw.status_code == 200
    assert raw.json()["choices"][0]["message"]["content"] == "The cloud says hello to you."
    assert raw.json()["model"] == "cloud-model"
    assert raw.headers["x-smallfirst-tier"] == "cloud"
    assert raw.json()["usage"]["completion_tokens"] == 6


def test_stream_pass_through(gateway: Server) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0) as api:
        stream = api.chat.completions.create(
            model="cloud-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The cloud says hello to you."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_upstream_timeout_is_504(gateway: Server) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "slow-cloud", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_upstream_killed_mid_request_is_502_and_gateway_keeps_serving(tmp_path: Path) -> None:
    doomed = start_server(
        fake_upstream_config("doomed-model", "a b c d e f g h i j", delay=0.5), tmp_path / "doomed"
    )
    config = {
        "models": [
            {"id": "edge-fake", "tier": "edge", "backend": "fake", "replies": ["still here"]},
            cloud_model("doomed-cloud", doomed, "doomed-model", max_retries=1),
        ]
    }
    gateway = start_server(config, tmp_path / "gateway")
    try:
        result: dict[str, httpx.Response] = {}

        def ask() -> None:
            result["response"] = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "doomed-cloud", "messages": [{"role": "user", "content": "x"}]},
                timeout=30,
            )

        thread = threading.Thread(target=ask)
        thread.start()
        threading.Event().wait(1.0)  # the upstream is now mid-answer (5 s in total)
        doomed.process.kill()
        thread.join(timeout=30)
        assert result["response"].status_code == 502
        assert result["response"].json()["error"]["code"] == "upstream_error"
        again = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "edge-fake", "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        )
        assert again.status_code == 200
        assert again.json()["choices"][0]["message"]["content"] == "still here"
        # routed traffic falls back along the chain (cloud -> edge) when the cloud is down
        fallback = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "x"}]},
            headers={"x-smallfirst-route": "cloud"},
            timeout=30,
        )
        assert fallback.status_code == 200
        assert fallback.json()["model"] == "edge-fake"
        assert fallback.headers["x-smallfirst-escalations"] == "doomed-cloud"
        # Its third failure in a row: then the gateway stops calling it for a while.
        for calls_the_dead_upstream in (True, False):
            fallback = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "x"}]},
                headers={"x-smallfirst-route": "cloud"},
                timeout=30,
            )
            assert fallback.json()["model"] == "edge-fake"
            assert ("x-smallfirst-escalations" in fallback.headers) == calls_the_dead_upstream
        assert "doomed-cloud skipped for" in fallback.json()["smallfirst"]["reason"]
    finally:
        gateway.stop()
        doomed.stop()
