"""`model: auto` end to end: the real bundled model as edge, a real second server as cloud."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, cloud_model, start_server

pytestmark = pytest.mark.integration
ROUTING_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing"
EDGE = {"id": "smollm2-135m", "tier": "edge", "context_length": 2048}
WORD_CODE = {  # a pattern with a word boundary: beyond the local grammar
    "type": "json_schema",
    "json_schema": {"name": "c", "schema": {"type": "string", "pattern": r"^\w+\b$"}},
}


@pytest.fixture(scope="module")
def learned_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("router") / "artifact"
    command = [sys.executable, "-m", "smallfirst", "router", "train", "--router", "learned"]
    data = ["--data", str(ROUTING_DATA / "mt_bench.jsonl"), "--out", str(out)]
    subprocess.run([*command, *data], check=True, timeout=600, capture_output=True)
    return out


def auto(server: Server, text: str, **extra: object) -> httpx.Response:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 16,
        **extra,
    }
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


@pytest.fixture(scope="module")
def learned_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server, learned_artifact: Path
) -> Iterator[Server]:
    config = {
        "models": [EDGE, cloud_model("cloud-model", upstream, "upstream-model")],
        "routing": {"router": str(learned_artifact)},
    }
    server = start_server(config, tmp_path_factory.mktemp("learned-gateway"))
    yield server
    server.stop()


def test_learned_router_routes_and_explains(learned_gateway: Server) -> None:
    response = auto(learned_gateway, "Write a proof that there are infinitely many primes.")
    assert response.status_code == 200
    info = response.json()["smallfirst"]
    assert info["router"] == "learned"
    strong = info["score"] >= info["threshold"]
    assert response.json()["model"] == ("cloud-model" if strong else "smollm2-135m")
    assert response.headers["x-smallfirst-tier"] == ("cloud" if strong else "edge")


def test_learned_router_honours_the_strong_share_knob(learned_gateway: Server) -> None:
    text = "Explain the difference between a list and a tuple in Python."
    # greedy: its text is checked, and sampled it could be one end token, and empty
    none_strong = auto(learned_gateway, text, max_strong_share=0.0, temperature=0)
    assert none_strong.json()["model"] == "smollm2-135m"
    assert none_strong.json()["smallfirst"]["threshold"] is None  # never strong
    assert none_strong.json()["choices"][0]["message"]["content"]
    thresholds = []
    for share in (0.25, 0.5, 1.0):
        response = auto(learned_gateway, text, max_strong_share=share)
        info = response.json()["smallfirst"]
        strong = info["score"] >= info["threshold"]
        assert response.json()["model"] == ("cloud-model" if strong else "smollm2-135m")
        thresholds.append(info["threshold"])
    assert thresholds == sorted(thresholds, reverse=True)  # a larger share, a lower bar


def test_cascade_with_the_real_small_model(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server
) -> None:
    unsure = {"router": "cascade", "cascade": {"min_mean_logprob": -1e-6}}
    sure = {"router": "cascade", "cascade": {"min_mean_logprob": -50.0}}
    for routing, answering in ((unsure, "cloud-model"), (sure, "smollm2-135m")):
        config = {"models": [EDGE, cloud_model("cloud-model", upstream, "upstream-model")]}
        server = start_server(
            {**config, "routing": routing}, tmp_path_factory.mktemp("cascade-gateway")
        )
        try:
            plain = auto(server, "What is the capital of France?")
            streamed = auto(server, "What is the capital of France?", stream=True)
            beyond_grammar = auto(server, "A code, please.", response_format=WORD_CODE)
        finally:
            server.stop()
        # the small model's grammar cannot express the schema, which the cloud model takes
        assert beyond_grammar.json()["model"] == "cloud-model"
        assert "grammar cannot express" in beyond_grammar.json()["smallfirst"]["reason"]
        assert plain.json()["model"] == answering
        assert streamed.headers["x-smallfirst-model"] == answering
        assert streamed.text.endswith("data: [DONE]\n\n")
        if answering == "cloud-model":
            assert plain.headers["x-smallfirst-escalations"] == "smollm2-135m"
            assert "escalated: mean logprob" in plain.json()["smallfirst"]["reason"]
        else:
            assert "kept: mean logprob" in plain.json()["smallfirst"]["reason"]
