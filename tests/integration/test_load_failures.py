"""A model llama.cpp cannot load is a model that is unavailable (503, fallbacks answer),
never a process that crashes or a 500 for every request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_server

pytestmark = pytest.mark.integration

# Starts as a GGUF file does, so it passes `config check`; llama.cpp cannot read the rest.
NOT_QUITE_GGUF = b"GGUF" + b"\x00" * 60


def test_unreadable_model_and_adapter_files_are_503s_and_fallbacks_answer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("load-failures")
    broken = Path(directory / "broken.gguf")
    broken.write_bytes(NOT_QUITE_GGUF)
    models = [
        {"id": "edge-model", "tier": "edge", "context_length": 1024, "parallel": 1},
        {"id": "broken", "tier": "onprem", "path": str(broken), "preload": False},
        {
            "id": "with-adapter",
            "tier": "onprem",
            "context_length": 1024,
            "parallel": 1,
            "lora_path": str(broken),  # a NULL adapter crashed the process at the first decode
            "preload": False,
        },
    ]
    server = start_server({"models": models}, directory)
    try:
        ask = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        for model in ("broken", "with-adapter"):
            refused = httpx.post(
                f"{server.url}/v1/chat/completions", json={**ask, "model": model}, timeout=60
            )
            assert refused.status_code == 503, refused.text  # was a 500, or no answer at all
            assert "llama.cpp could not load" in refused.json()["error"]["message"]
        routed = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={**ask, "model": "auto"},
            headers={"x-smallfirst-route": "onprem"},
            timeout=60,
        )
        assert routed.status_code == 200, routed.text
        assert routed.headers["x-smallfirst-model"] == "edge-model"
        assert "could not load" in routed.json()["smallfirst"]["reason"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()
