"""The HTTP edge as OpenAI's clients meet it: error bodies for malformed, oversized or odd
requests, what is missing or not an object, and the openai SDK's own reading of embeddings."""

import asyncio
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.server.routes import READ_IN_THREAD_BYTES, RequestModel, validated
from smallfirst.service import Gateway
from tests.helpers import (
    LOOPBACK,
    chat_body,
    fake_client,
    fake_settings,
)

INFINITE_MAXIMUM_TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "number", "maximum": math.inf}},
}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": "tiny"}, "messages"),
        ("/v1/completions", {"model": "tiny"}, "prompt"),
        ("/v1/responses", {"model": "tiny"}, "input"),
        ("/v1/embeddings", {"model": "all-minilm-l6-v2"}, "input"),
        ("/tokenize", {}, "prompt"),
    ],
)
def test_a_missing_field_is_named_as_openai_names_it(
    api: tuple[TestClient, Gateway], path: str, body: dict[str, object], param: str
) -> None:
    """It read "Invalid value for 'messages': Field required", without OpenAI's code."""
    client, _ = api
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": f"Missing required parameter: '{param}'.",
        "type": "invalid_request_error",
        "param": param,
        "code": "missing_required_parameter",
    }


@pytest.mark.parametrize(
    ("path", "body", "kind"),
    [
        ("/v1/chat/completions", b"[]", "an array"),
        ("/v1/embeddings", b'"text"', "a string"),
        ("/detokenize", b"null", "null"),
    ],
)
def test_a_body_that_is_not_a_json_object_says_so(
    api: tuple[TestClient, Gateway], path: str, body: bytes, kind: str
) -> None:
    """It read "Invalid type for '': ..." with `param` "" (no field is wrong: the body is)."""
    client, _ = api
    error = client.post(path, content=body).json()["error"]
    assert error["message"] == (
        f"Invalid type for the request body: expected an object, but got {kind} instead."
    )
    assert error["param"] is None


def test_the_openai_sdk_reads_embeddings_as_sent_in_both_encodings(
    api: tuple[TestClient, Gateway],
) -> None:
    """The SDK asks for base64 unless told otherwise and decodes it itself: the floats must be
    those of `encoding_format: float`, and usage the same."""
    pytest.importorskip("onnxruntime")
    openai = pytest.importorskip("openai")
    client, _ = api
    sdk = openai.OpenAI(base_url=f"{LOOPBACK}/v1", api_key="unused", http_client=client)
    texts = [
        "hello world",
        "The quick brown fox.",
        "\u65e5\u672c\u8a9e und Umlaute: \u00e4\u00f6\u00fc",
    ]
    decoded = sdk.embeddings.create(model="all-minilm-l6-v2", input=texts)
    floats = sdk.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    assert [d.embedding for d in decoded.data] == [f.embedding for f in floats.data]
    assert [d.index for d in decoded.data] == [0, 1, 2]
    assert len(decoded.data[0].embedding) == 384
    assert decoded.usage == floats.usage
    assert decoded.usage.prompt_tokens == decoded.usage.total_tokens > len(texts)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model="all-minilm-l6-v2", input="word " * 300)
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.request_id


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
            "best_of > n is not supported: it would generate best_of answers",
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
        (
            "/v1/chat/completions",
            chat_body(max_tokens=0),
            "max_tokens",
            "greater than or equal to 1",
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


def test_a_body_of_exactly_max_body_bytes_is_read(tmp_path: Path) -> None:
    """The limit is the largest body taken, declared or counted; a byte more is a 413."""
    client, _ = fake_client(fake_settings(tmp_path, server={"max_body_bytes": 2048}))
    empty = json.dumps(chat_body(messages=[{"role": "user", "content": ""}])).encode()
    at_the_limit = json.dumps(
        chat_body(messages=[{"role": "user", "content": "x" * (2048 - len(empty))}])
    ).encode()
    assert len(at_the_limit) == 2048
    over = at_the_limit.replace(b'"x', b'"xx', 1)
    with client:
        for body, status in ((at_the_limit, 200), (over, 413)):
            declared = client.post("/v1/chat/completions", content=body)
            chunked = client.post("/v1/chat/completions", content=iter([body[:1000], body[1000:]]))
            assert (declared.status_code, chunked.status_code) == (status, status)


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
        ({"model": "tiny", "input": "a", "tools": [1] * 200_000}, "tools", 128),
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


def test_a_large_body_is_read_off_the_event_loop(
    api: tuple[TestClient, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validating 3 MB of small messages takes ~0.6 s (a Responses `input`, ~1.1 s): on the
    event loop, every other request waited that long (QA: /healthz took 1.1 s)."""
    client, _ = api
    on_the_loop: list[bool] = []

    def watched(model: type[RequestModel], body: bytes) -> RequestModel:
        on_the_loop.append(_on_an_event_loop())
        return validated(model, body)

    monkeypatch.setattr("smallfirst.server.routes.validated", watched)
    large = chat_body(messages=[{"role": "user", "content": "x" * READ_IN_THREAD_BYTES}])
    for body in (chat_body(), large):
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert on_the_loop == [True, False]


def _on_an_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_error_body_is_json_serialisable_for_every_status(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    assert response.status_code == 404
    assert json.loads(response.text)["error"]["code"] == "model_not_found"


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
