"""The HTTP edge as OpenAI's clients meet it: error bodies for what is missing or not an
object, and the openai SDK's own reading of /v1/embeddings."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from tests.helpers import LOOPBACK, fake_client, fake_settings


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        yield client, gateway


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
