"""The HTTP surface with fake backends: shapes, statuses and headers a client relies on."""

import json
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from starlette.testclient import TestClient

from smallfirst.answers import RouteInfo
from smallfirst.completions import Chunk, Completion, ModelInfo, Usage
from smallfirst.config import Settings
from smallfirst.errors import (
    INTERNAL_ERROR_MESSAGE,
    ModelUnavailable,
    UpstreamError,
    UpstreamQuotaSpent,
)
from smallfirst.logs import RequestLog
from smallfirst.server.app import create_app
from smallfirst.server.render import ChunkRenderer, completion_body
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest
from tests.helpers import (
    LOOPBACK,
    chat_body,
    fake_backend,
    fake_client,
    fake_settings,
)


def test_chat_completion_says_which_model_answered(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "tiny"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello from tiny.",
        "refusal": None,
    }
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3
    assert response.headers["x-smallfirst-model"] == "tiny"
    assert response.headers["x-smallfirst-tier"] == "edge"
    assert body["smallfirst"]["tier"] == "edge"


def test_auto_goes_to_the_edge_model(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/chat/completions", json=chat_body("auto"))
    assert response.json()["model"] == "tiny"


def test_text_completion(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post(
        "/v1/completions", json={"model": "big", "prompt": "Once", "logprobs": 1}
    )
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Hello from big."
    assert body["choices"][0]["logprobs"]["tokens"] == ["Hello", " from", " big."]


def test_openai_prompt_cache_hints_go_on_to_a_remote_tier(api: tuple[TestClient, Gateway]) -> None:
    """The newer openai SDK's cache fields, as its docs give them: accepted, sent upstream,
    and no concern of a local model (which keeps prompts by itself)."""
    client, gateway = api
    breakpoint_part = {"type": "text", "text": "A long, shared preamble.",
                       "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"}}  # fmt: skip
    hints = {
        "prompt_cache_options": {"mode": "explicit", "ttl": "30m"},
        "prompt_cache_retention": "24h",
        "safety_identifier": "u" * 128,  # the SDK's documented maximum
        "prompt_cache_key": "k" * 1000,  # no maximum documented
    }
    messages = [{"role": "system", "content": [breakpoint_part]}, {"role": "user", "content": "Hi"}]
    for model in ("big", "tiny"):
        body = chat_body(model, messages=messages, **hints)
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    upstream = sent.openai_body()
    assert upstream["prompt_cache_options"] == {"mode": "explicit", "ttl": "30m"}
    assert upstream["prompt_cache_retention"] == "24h"
    assert upstream["messages"][0]["content"][0]["prompt_cache_breakpoint"] == {
        "mode": "explicit",
        "ttl": "12h",
    }
    too_long = chat_body("big", safety_identifier="u" * 129)
    assert client.post("/v1/chat/completions", json=too_long).status_code == 400
    bad_ttl = chat_body("big", prompt_cache_options={"ttl": "1h"})
    assert client.post("/v1/chat/completions", json=bad_ttl).status_code == 400


def test_openai_fields_that_change_nothing_here_are_accepted(
    api: tuple[TestClient, Gateway],
) -> None:
    """No stream here is padded, a local model has one processing tier and no length knob, and
    `best_of: 1` is what every answer is; a remote tier gets the tier and verbosity asked."""
    client, gateway = api
    options = {"include_obfuscation": False, "include_usage": True}
    streamed = client.post(
        "/v1/chat/completions", json=chat_body(stream=True, stream_options=options)
    )
    last = json.loads(streamed.text.split("data: ")[-2])  # the event before [DONE]
    assert last["usage"]["completion_tokens"] == 3
    for model in ("big", "tiny"):
        body = chat_body(model, service_tier="priority", verbosity="high")
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    upstream = fake_backend(gateway, "big").requests[-1].openai_body()
    assert (upstream["service_tier"], upstream["verbosity"]) == ("priority", "high")
    text = client.post("/v1/completions", json={"model": "tiny", "prompt": "x", "best_of": 1})
    assert [choice["text"] for choice in text.json()["choices"]] == ["Hello from tiny."]


def test_best_of_equal_to_n_returns_the_n_answers(api: tuple[TestClient, Gateway]) -> None:
    """The n best of n are all of them: OpenAI takes it (best_of >= n); it was a 400."""
    client, gateway = api
    fake_backend(gateway, "tiny").queue("One.", "Two.")
    body = {"model": "tiny", "prompt": "x", "n": 2, "best_of": 2}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200
    assert sorted(choice["text"] for choice in response.json()["choices"]) == ["One.", "Two."]


def test_a_logit_bias_goes_on_to_the_model_asked_for(api: tuple[TestClient, Gateway]) -> None:
    """Token ids mean something in one vocabulary: passed on to the model named, and an
    empty bias (some clients always send one) is no bias, `auto` included."""
    client, gateway = api
    bias = {"50256": -100, "15": 2.5}
    body = chat_body("big", logit_bias=bias)
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert sent.openai_body()["logit_bias"] == bias
    for empty in ({}, None):
        body = chat_body("auto", logit_bias=empty)
        assert client.post("/v1/chat/completions", json=body).status_code == 200


def test_llama_cpp_sampling_knobs_go_on_as_sent(api: tuple[TestClient, Gateway]) -> None:
    """`top_k`, `min_p` and the repeat penalty are no OpenAI fields: a remote tier gets them
    as the client sent them (an upstream that does not know them says so)."""
    client, gateway = api
    knobs = {"top_k": 20, "min_p": 0.1, "repetition_penalty": 1.1}
    assert client.post("/v1/chat/completions", json=chat_body("big", **knobs)).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert {k: sent.openai_body()[k] for k in knobs} == knobs
    assert sent.penalty_for_repeats == 1.1


def readyz_after_a_failed_warm_up(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, error: Exception
) -> httpx.Response:
    """/readyz once a warm-up that raises `error` has ended (5 s at most)."""
    gateway = Gateway(settings, request_log=RequestLog(settings.resolved_data_dir / "r.db"))

    async def broken() -> None:
        raise error

    monkeypatch.setattr(gateway.privacy, "warm_up", broken)
    with TestClient(create_app(settings, gateway), base_url=LOOPBACK) as client:
        for _ in range(100):
            ready = client.get("/readyz")
            if ready.json()["status"] != "starting":
                break
            time.sleep(0.05)
    return ready


def test_a_default_model_that_fails_to_load_in_any_way_makes_readyz_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only our own errors were caught: any other left /readyz at "starting" for good."""
    error = ValueError("Failed to load model from file: /models/x.gguf")
    ready = readyz_after_a_failed_warm_up(monkeypatch, fake_settings(tmp_path), error)
    assert ready.status_code == 503
    assert ready.json()["status"] == "failed"


def test_a_pii_detector_that_fails_to_load_is_named_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It was logged as "default model failed to load", the model having loaded fine."""
    error = RuntimeError("spaCy model 'nope' is not installed")
    with caplog.at_level(logging.ERROR, logger="smallfirst"):
        readyz_after_a_failed_warm_up(monkeypatch, fake_settings(tmp_path), error)
    assert "PII detector failed to load" in caplog.text
    assert "default model failed" not in caplog.text


def test_with_keys_required_the_keyless_readyz_names_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It showed the failed model's path on disk to anyone."""
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "sekret-1")
    settings = fake_settings(tmp_path, server={"host": "0.0.0.0"})
    error = ModelUnavailable("llama.cpp could not load /secret/dir/x.gguf")
    ready = readyz_after_a_failed_warm_up(monkeypatch, settings, error)
    assert ready.json() == {"status": "failed", "problem": "see the server's log"}


def test_upstream_failure_is_502_without_a_trace(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500: boom"))
    response = client.post("/v1/chat/completions", json=chat_body("big"))
    assert response.status_code == 502
    assert "Traceback" not in response.text


def test_an_upstreams_spent_quota_is_a_429_insufficient_quota(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    spent = UpstreamQuotaSpent("big: You exceeded your current quota.")
    spent.retry_after_s = 7  # as the upstream said it
    fake_backend(gateway, "big").queue(spent)
    response = client.post("/v1/chat/completions", json=chat_body("big"))
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "insufficient_quota"
    assert response.headers["retry-after"] == "7"


def test_an_upstreams_refusal_reasoning_and_content_filter_reach_the_client() -> None:
    """They were dropped, and content_filter became stop (local models write none of them)."""
    request = ChatRequest.model_validate(chat_body("big", stream=True))
    model = ModelInfo(id="big", tier="cloud", backend="openai_compat", context_length=100)
    route = RouteInfo(model=model, router="none", reason="asked for by id")
    answer = Completion(
        text="", refusal="I can't help.", reasoning="Hm.", finish_reason="content_filter"
    )
    whole = completion_body(request, [answer], Usage(), route, "r1")
    (choice,) = whole["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": "I can't help.",
        "reasoning_content": "Hm.",
    }
    renderer = ChunkRenderer(request, route, "r1")
    pieces = [
        Chunk(reasoning="Hm."),
        Chunk(refusal="I can't"),
        Chunk(finish_reason="content_filter"),
    ]
    events = [event for piece in pieces for event in renderer.events(piece)]
    deltas = [event["choices"][0]["delta"] for event in events]
    opening = {"role": "assistant", "content": "", "refusal": None}
    assert deltas == [opening, {"reasoning_content": "Hm."}, {"refusal": "I can't"}, {}]
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_a_streamed_refusal_opens_as_openais_with_content_null() -> None:
    """It opened with `content: ""`: openai's stream helper told a `content.delta` and its
    final message had `content == ""` beside the refusal (OpenAI's: None, as unstreamed)."""
    request = ChatRequest.model_validate(chat_body("big", stream=True))
    model = ModelInfo(id="big", tier="cloud", backend="openai_compat", context_length=100)
    renderer = ChunkRenderer(request, RouteInfo(model=model, router="none", reason="by id"), "r1")
    pieces = [Chunk(refusal="I can't"), Chunk(refusal=" help."), Chunk(finish_reason="stop")]
    events = [event for piece in pieces for event in renderer.events(piece)]
    opening = events[0]["choices"][0]["delta"]
    assert opening == {"role": "assistant", "content": None, "refusal": ""}
    state = ChatCompletionStreamState()
    told = [
        event.type
        for raw in events
        for event in state.handle_chunk(ChatCompletionChunk.model_validate(raw))
    ]
    assert "content.delta" not in told
    message = state.get_final_completion().choices[0].message
    assert (message.content, message.refusal) == (None, "I can't help.")


@pytest.mark.parametrize("stream", [False, True])
def test_a_bug_is_a_logged_500_that_says_nothing_of_it(tmp_path: Path, stream: bool) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    fake_backend(gateway, "tiny").queue(IndexError("list index out of range"))
    with client:
        response = client.post("/v1/chat/completions", json=chat_body("tiny", stream=stream))
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    assert response.json()["error"]["message"] == INTERNAL_ERROR_MESSAGE
    assert "index" not in response.text
    logged = dict(
        sqlite3.connect(tmp_path / "requests.db").execute("SELECT id, status FROM requests")
    )
    assert logged[response.headers["x-request-id"]] == 500
    assert 'status="500",tier="edge"' in metrics


def test_models_list_has_tiers_context_and_costs(
    api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, _ = api
    data = client.get("/v1/models").json()["data"]
    big = next(m for m in data if m["id"] == "big")
    assert big["tier"] == "cloud"
    assert big["context_length"] == big["max_model_len"] == 8192
    assert (big["input_cost_per_1m"], big["output_cost_per_1m"]) == (2.0, 8.0)
    assert client.get("/v1/models/big").json()["id"] == "big"
    assert client.get("/v1/models/nope").status_code == 404
    # what a model picker in a UI should offer too: the router
    auto = next(m for m in data if m["id"] == "auto")
    assert auto["backend"] == "router"
    assert auto["context_length"] == 8192
    # vLLM's name for it too, on every entry (`auto` and `rag/...` had none)
    assert all(m["max_model_len"] == m["context_length"] for m in data)
    assert client.get("/v1/models/auto").json()["id"] == "auto"
    alias = client.get("/v1/models/text-embedding-local")  # /v1/embeddings takes it: was a 404
    assert (alias.json()["id"], alias.json()["backend"]) == ("text-embedding-local", "embeddings")
    assert not [m for m in data if m["id"].startswith("rag/")]  # nothing ingested
    assert not (tmp_path / "rag.sqlite").exists()  # and listing created no store


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", chat_body(n=None, stream=None, logprobs=None)),
        ("/v1/completions", {"model": "tiny", "prompt": "Hi", "n": None, "echo": None}),
        ("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": "Hi", "encoding_format": None}),
        ("/v1/responses", {"model": "tiny", "input": "Hi", "stream": None}),
    ],
)
def test_null_is_the_default_as_in_openai(
    api: tuple[TestClient, Gateway], path: str, body: dict[str, object]
) -> None:
    client, _ = api
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")


def test_reasoning_effort_goes_to_a_remote_model_and_changes_nothing_here(
    api: tuple[TestClient, Gateway],
) -> None:
    """LangChain and the openai SDK send it for reasoning models; it was a 400."""
    client, gateway = api
    for model in ("big", "tiny"):
        body = chat_body(model, reasoning_effort="low")
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert fake_backend(gateway, "big").requests[-1].openai_body()["reasoning_effort"] == "low"
    bad = client.post("/v1/chat/completions", json=chat_body(reasoning_effort="max"))
    assert bad.status_code == 400


def test_text_modality_and_predicted_output_are_accepted_and_the_prediction_stays_here(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    prediction = {"type": "content", "content": "Dear Jane Doe, ..."}
    body = chat_body("big", modalities=["text"], prediction=prediction)
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1].openai_body()
    assert sent["modalities"] == ["text"]
    assert "prediction" not in sent


# pydantic reads Infinity where a field takes any JSON; json.dumps writes it.
