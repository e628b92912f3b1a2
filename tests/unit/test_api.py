"""The HTTP surface with fake backends: shapes, statuses and headers a client relies on."""

import gzip
import json
import logging
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
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
    keyed_client,
)


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, Gateway]:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        yield client, gateway


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


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (chat_body(temperature=3), 400, "temperature"),
        (chat_body(n=0), 400, "'n': Input should be greater than or equal to 1"),
        (chat_body(n=129), 400, "'n': Input should be less than or equal to 128"),
        (chat_body(modalities=["audio"]), 400, "'modalities.0': Input should be 'text'"),
        (chat_body(prediction={"type": "image"}), 400, "'prediction.type': Input should be"),
        (chat_body(tools=[]), 400, "'tools': List should have at least 1 item"),
        (
            chat_body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            400,
            "content parts of type image_url are not supported",
        ),
        (
            chat_body(messages=[{"role": "assistant", "function_call": {"name": "f"}}]),
            400,
            "function_call is not supported (use tool_calls)",
        ),
        ({"model": "tiny", "messages": []}, 400, "messages"),
        (chat_body(top_logprobs=2), 400, "top_logprobs requires logprobs"),
        (chat_body(stop=["x"] * 65), 400, "at most 64 stop sequences are allowed"),
        (chat_body(top_k=-2), 400, "'top_k': Input should be greater than or equal to -1"),
        (chat_body(min_p=1.5), 400, "'min_p': Input should be less than or equal to 1"),
        (
            chat_body(repeat_penalty=1.1, repetition_penalty=1.2),
            400,
            "repeat_penalty and repetition_penalty name the same penalty",
        ),
        (chat_body(logit_bias={"hello": 5}), 400, "keys are token ids (0, 1, ...), not 'hello'"),
        (chat_body(logit_bias={"-3": 5}), 400, "keys are token ids (0, 1, ...), not '-3'"),
        (chat_body(logit_bias={"\u00b2": 5}), 400, "keys are token ids (0, 1, ...), not"),
        (chat_body(logit_bias={"7": 101}), 400, "values go from -100 to 100; token 7: 101"),
        (chat_body("auto", logit_bias={"7": 1}), 400, "ask for a model by id"),
        (chat_body("missing"), 404, "does not exist"),
    ],
)
def test_bad_requests_get_openai_errors(
    api: tuple[TestClient, Gateway], body: dict[str, object], status: int, fragment: str
) -> None:
    client, _ = api
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        (
            "/v1/chat/completions",
            chat_body(max_tokens="3"),
            "max_tokens",
            "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
        ),
        ("/v1/chat/completions", chat_body(max_tokens=5.0), "max_tokens", "a decimal number"),
        ("/v1/chat/completions", chat_body(n=True), "n", "but got a boolean instead"),
        ("/v1/chat/completions", chat_body(stream="yes"), "stream", "expected a boolean"),
        ("/v1/chat/completions", chat_body(temperature="0.5"), "temperature", "expected a number"),
        (
            "/v1/chat/completions",
            chat_body(stop=5),
            "stop",
            "Invalid type for 'stop': expected a string or an array, but got an integer instead.",
        ),
        (
            "/v1/chat/completions",
            chat_body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages.0.content.0.text",
            "Missing required parameter: 'messages.0.content.0.text'.",
        ),
        (
            "/v1/chat/completions",
            chat_body(messages=[{"role": "user"}]),
            "messages.0.content",
            "a message with role 'user' needs content",
        ),
        (
            "/v1/chat/completions",
            chat_body(messages=[{"role": "user", "content": []}]),
            "messages.0.content",
            "an empty array",
        ),
        (
            "/v1/chat/completions",
            chat_body(messages=[{"role": "user", "content": [{"text": "Hi"}]}]),
            "messages.0.content.0.type",
            "each content part needs a type",
        ),
        (
            "/v1/chat/completions",
            chat_body(messages=[{"role": "tool", "content": "42"}]),
            "messages.0.tool_call_id",
            "needs tool_call_id",
        ),
        ("/v1/chat/completions", chat_body(top_logprobs=2), "top_logprobs", "requires logprobs"),
        ("/v1/chat/completions", chat_body(tool_choice="required"), "tool_choice", "needs tools"),
        (
            "/v1/chat/completions",
            chat_body(stream_options={"include_usage": True}),
            "stream_options",
            "only allowed when 'stream' is enabled",
        ),
        (
            "/v1/chat/completions",
            chat_body(stream_options={"include_obfuscation": False}),
            "stream_options",
            "only allowed when 'stream' is enabled",
        ),
        ("/v1/chat/completions", chat_body(verbosity="max"), "verbosity", "'low', 'medium'"),
        (
            "/v1/completions",
            {"model": "tiny", "prompt": "x", "best_of": 3},
            "best_of",
            "best_of > 1 is not supported: it would generate best_of answers",
        ),
        (
            "/v1/completions",
            {"model": "tiny", "prompt": "x", "best_of": 1, "n": 2},
            "best_of",
            "greater than or equal to n",
        ),
        (
            "/v1/completions",
            {"model": "tiny", "prompt": "x", "max_tokens": 0},
            "max_tokens",
            "echo",
        ),
        ("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": None}, "input", "got null"),
        ("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": ""}, "input", "not be empty"),
        ("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": []}, "input", "not be empty"),
    ],
)
def test_a_400_names_the_field_the_client_sent(
    api: tuple[TestClient, Gateway], path: str, body: dict[str, object], param: str, message: str
) -> None:
    """As OpenAI's: a JSON value of the wrong type is refused (never converted), and `param`
    is a path in the body as sent, not one of a union's alternatives ("stop.str")."""
    client, _ = api
    error = client.post(path, json=body).json()["error"]
    assert error["param"] == param
    assert message in error["message"]


def test_invalid_json_and_unknown_url(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    missing = client.post("/v1/chat/completion")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/chat/completion)."
    wrong_method = client.get("/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"  # RFC 9110 asks for it
    assert wrong_method.json()["error"]["message"] == (
        "Invalid method for URL (GET /v1/chat/completions)."
    )
    slash = client.get("/v1/models/")
    assert slash.json()["data"] == client.get("/v1/models").json()["data"]


def test_body_too_large_is_413_with_its_request_id(tmp_path: Path) -> None:
    """By declared length or by counting a chunked body's bytes; it had no x-request-id."""
    client, _ = fake_client(fake_settings(tmp_path, server={"max_body_bytes": 2048}))
    big = json.dumps(chat_body(messages=[{"role": "user", "content": "x" * 5000}])).encode()
    with client:
        declared = client.post("/v1/chat/completions", content=big)
        chunked = client.post("/v1/chat/completions", content=iter([big[:1000], big[1000:]]))
        fits = chat_body(messages=[{"role": "user", "content": "x" * 1500}])
        assert client.post("/v1/chat/completions", json=fits).status_code == 200
    assert "content-length" not in chunked.request.headers
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert response.headers["x-request-id"]


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
    assert deltas == [{"reasoning_content": "Hm."}, {"refusal": "I can't"}, {}]
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter"


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
    assert not [m for m in data if m["id"].startswith("rag/")]  # nothing ingested
    assert not (tmp_path / "rag.sqlite").exists()  # and listing created no store


def test_health_ready_and_metrics(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/chat/completions", json=chat_body("big"))
    text = client.get("/metrics").text
    assert 'smallfirst_requests_total{model="big",status="200",tier="cloud"} 1.0' in text
    assert 'smallfirst_tokens_total{direction="output",model="big",tier="cloud"} 3.0' in text
    assert 'smallfirst_queue_depth{model="tiny"} 0.0' in text


def test_every_answer_and_error_names_its_request_log_row(tmp_path: Path) -> None:
    """`x-request-id`, as OpenAI sends it (the openai SDK's `_request_id`): the id of the
    request's row in the log, for answers, streams, errors, and bodies that do not parse."""
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        responses = [
            client.post("/v1/chat/completions", json=chat_body("big")),
            client.post("/v1/chat/completions", json=chat_body("tiny", stream=True)),
            client.post("/v1/completions", json={"model": "tiny", "prompt": ["a", "b"]}),
            client.post("/v1/chat/completions", json=chat_body("nope")),
            client.post("/v1/chat/completions", content=b"{not json"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 400]
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    logged = dict(
        sqlite3.connect(tmp_path / "requests.db").execute("SELECT id, status FROM requests")
    )
    assert [logged[i] for i in (ids[0], ids[1], ids[3], ids[4])] == [200, 200, 404, 400]
    assert logged[f"{ids[2]}-0"] == logged[f"{ids[2]}-1"] == 200  # a batch: one row a prompt
    assert responses[0].json()["id"].endswith(ids[0])


def test_each_request_is_logged_with_cost_and_no_prompt(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    client, _ = fake_client(settings)
    with client:
        client.post("/v1/chat/completions", json=chat_body("big"))
        client.post("/v1/chat/completions", json=chat_body("nope"))
    rows = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute(
            "SELECT model_answered, tier, status, prompt_tokens, completion_tokens, cost_usd,"
            " prompt FROM requests ORDER BY created_at"
        )
        .fetchall()
    )
    answered, tier, status, prompt_tokens, completion_tokens, cost, prompt = rows[0]
    assert (answered, tier, status, prompt) == ("big", "cloud", 200, None)
    assert cost == pytest.approx((prompt_tokens * 2.0 + completion_tokens * 8.0) / 1e6)
    assert rows[1][2] == 404


def test_requests_refused_before_routing_are_logged_and_counted(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        client.post("/v1/chat/completions", json=chat_body(temperature=3))
        client.post("/v1/completions", content=b"{nope")
        metrics = client.get("/metrics").text
    assert 'smallfirst_requests_total{model="unknown",status="400",tier="none"} 2.0' in metrics
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT endpoint, model_requested, status FROM requests ORDER BY endpoint"
    )
    assert rows.fetchall() == [("chat", "unknown", 400), ("completions", "unknown", 400)]


def test_prompts_are_logged_only_when_asked(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, log_prompts=True))
    with client:
        client.post("/v1/chat/completions", json=chat_body())
    prompt, response = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute("SELECT prompt, response FROM requests")
        .fetchone()
    )
    assert prompt == "user: Hi there"
    assert response == "Hello from tiny."


def test_api_keys_required_off_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1,sekret-2")
    with client:
        missing = client.post("/v1/chat/completions", json=chat_body())
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        right = client.get("/v1/models", headers={"Authorization": "Bearer sekret-2"})
        health = client.get("/healthz")
        tokenizer = [
            client.post("/tokenize", json={"model": "tiny", "prompt": "hi"}),
            client.post("/detokenize", json={"model": "tiny", "tokens": [104]}),
            client.get("/tokenizer_info"),
        ]
        keyed = client.post(
            "/tokenize",
            json={"model": "tiny", "prompt": "hi"},
            headers={"Authorization": "Bearer sekret-1"},
        )
    assert [r.status_code for r in tokenizer] == [401, 401, 401]
    assert keyed.status_code == 200
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200


def test_metrics_and_dashboard_need_a_key_off_loopback_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1")
    with client:
        metrics = client.get("/metrics")
        scraped = client.get("/metrics", headers={"Authorization": "Bearer sekret-1"})
        page = client.get("/dashboard")
        browser = client.get("/dashboard", auth=("anyone", "sekret-1"))
        wrong = client.get("/dashboard", auth=("anyone", "nope"))
        ready = client.get("/readyz")
    assert metrics.status_code == 401
    assert "www-authenticate" not in metrics.headers
    assert scraped.status_code == 200
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith('Basic realm="smallfirst"')
    assert browser.status_code == 200
    assert wrong.status_code == 401
    assert ready.status_code == 200


def test_on_loopback_metrics_and_dashboard_stay_open(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    assert client.get("/metrics").status_code == 200
    assert client.get("/dashboard").status_code == 200


def test_the_embedding_model_is_listed_and_its_requests_logged(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        body = {"model": "all-minilm-l6-v2", "input": ["two words", "three more words"]}
        embedded = client.post("/v1/embeddings", json=body)
        unknown = client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
        too_long = {"model": "all-minilm-l6-v2", "input": "word " * 400}
        refused = client.post("/v1/embeddings", json=too_long)
        chat = client.post("/v1/chat/completions", json=chat_body("all-minilm-l6-v2"))
    assert listed["all-minilm-l6-v2"]["dimensions"] == 384
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT id, status, tier, prompt_tokens FROM requests WHERE endpoint = 'embeddings'"
    )
    logged = {row[0]: row[1:] for row in rows}
    tokens = embedded.json()["usage"]["prompt_tokens"]
    assert logged[embedded.headers["x-request-id"]] == (200, "embeddings", tokens)
    assert logged[unknown.headers["x-request-id"]] == (404, None, 0)
    # a request for the embedding model keeps it, failed or not (it was "unknown", in 0 ms)
    assert logged[refused.headers["x-request-id"]] == (400, "embeddings", 0)
    assert chat.status_code == 400
    assert "is an embedding model: send it to /v1/embeddings" in chat.json()["error"]["message"]


def test_embedding_requests_do_not_hold_up_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: six large embedding requests took every thread of asyncio's default pool, and a
    chat request (its privacy scan runs there) waited until all six were done."""
    pytest.importorskip("onnxruntime")
    import asyncio
    import threading

    import numpy as np

    from smallfirst.embed import DIMENSIONS, encoder

    release = threading.Event()

    def held(self: Any, token_ids: list[int]) -> Any:
        release.wait(timeout=30)  # the embeddings go on until the chat has its answer
        return np.zeros(DIMENSIONS, dtype=np.float32)

    monkeypatch.setattr(encoder.LocalEmbedder, "_embed_ids", held)
    client, _ = fake_client(fake_settings(tmp_path))  # the privacy guard is on: a thread each

    async def chat_beside_embeddings() -> int:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            body = {"model": "all-minilm-l6-v2", "input": ["a text"] * 4}
            embeddings = [
                asyncio.ensure_future(http.post("/v1/embeddings", json=body)) for _ in range(40)
            ]
            await asyncio.sleep(0.2)  # all are in: more than the default pool has threads
            try:
                chat = await asyncio.wait_for(
                    http.post("/v1/chat/completions", json=chat_body()), timeout=20
                )
            finally:
                release.set()
                await asyncio.gather(*embeddings)
            return chat.status_code

    with client:
        assert client.portal is not None
        assert client.portal.call(chat_beside_embeddings) == 200


@pytest.mark.parametrize(
    ("body", "where", "limit"),
    [
        (
            chat_body(messages=[{"role": "user", "content": [1] * 200_000}]),
            "messages.0.content",
            10000,
        ),
        (chat_body(messages=[1] * 200_000), "messages", 100000),
        ({"model": "tiny", "input": [1] * 200_000}, "input", 100000),
    ],
)
def test_a_list_of_a_great_many_bad_items_is_refused_by_its_length(
    api: tuple[TestClient, Gateway], body: dict[str, Any], where: str, limit: int
) -> None:
    """Each bad item was an error to build and read: seconds per megabyte of body, with every
    other request waiting (QA: 21 s for 3.8 MB)."""
    client, _ = api
    path = "/v1/responses" if "input" in body else "/v1/chat/completions"
    refused = client.post(path, json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == where
    assert f"at most {limit} items" in error["message"]


def test_error_body_is_json_serialisable_for_every_status(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    assert response.status_code == 404
    assert json.loads(response.text)["error"]["code"] == "model_not_found"


def test_embeddings_refuse_a_size_the_model_cannot_make(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "all-minilm-l6-v2", "input": "x", "dimensions": 256}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "dimensions"
    assert "384-dimensional vectors only" in response.json()["error"]["message"]


def test_embeddings_take_at_most_2048_inputs_as_openai_does(
    api: tuple[TestClient, Gateway],
) -> None:
    client, _ = api
    body = {"model": "all-minilm-l6-v2", "input": ["x"] * 2049}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert "at most 2048 inputs per request; got 2049" in response.json()["error"]["message"]


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
def test_embeddings_refuse_token_arrays_by_name(
    api: tuple[TestClient, Gateway], tokens: list[object]
) -> None:
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": tokens})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
    assert "token arrays are not supported" in response.json()["error"]["message"]


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
INFINITE_MAXIMUM_TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "number", "maximum": math.inf}},
}


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "param", "fragment"),
    [
        (
            "/v1/chat/completions",
            b'{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "top_p": NaN}',
            {},
            400,
            "top_p",
            "Input should be a finite number",
        ),
        ("/v1/chat/completions", b"[" * 300 + b"]" * 300, {}, 400, None, "recursion limit"),
        (
            "/v1/chat/completions",
            json.dumps(chat_body(tools=[INFINITE_MAXIMUM_TOOL])).encode(),
            {},
            400,
            None,
            "NaN and Infinity are not JSON numbers (expected value at line 1",
        ),
        (
            "/v1/chat/completions",
            json.dumps(chat_body(max_tokens=int("9" * 400))).encode(),
            {},
            400,
            "max_tokens",
            "less than or equal to 9223372036854775807",
        ),
        (
            "/v1/chat/completions",
            gzip.compress(json.dumps(chat_body()).encode()),
            {"content-encoding": "gzip"},
            415,
            None,
            "Content-Encoding gzip is not supported",
        ),
        (
            "/v1/chat/completions",
            json.dumps(
                chat_body(
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "my schema", "schema": {"type": "object"}},
                    }
                )
            ).encode(),
            {},
            400,
            "response_format.json_schema.name",
            "should match pattern",
        ),
        (
            "/v1/embeddings",
            json.dumps({"model": "all-minilm-l6-v2", "input": ["a", ""]}).encode(),
            {},
            400,
            "input.1",
            "an empty text has no embedding",
        ),
        (
            "/tokenize",
            json.dumps({"model": "all-minilm-l6-v2", "prompt": "Hi"}).encode(),
            {},
            400,
            "model",
            "need a local model",
        ),
    ],
)
def test_odd_bodies_get_clear_errors(
    api: tuple[TestClient, Gateway],
    path: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    param: str | None,
    fragment: str,
) -> None:
    client, _ = api
    sent_headers = {"content-type": "application/json", **headers}
    response = client.post(path, content=content, headers=sent_headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["param"] == param
