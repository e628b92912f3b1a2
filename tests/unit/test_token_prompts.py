"""Prompts given as token ids, and the vLLM-style `/tokenize`, `/detokenize` and
`/tokenizer_info` endpoints, with fake backends (whose local ones read one token per byte)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from smallfirst.types import TextRequest
from tests.helpers import fake_backend

PROMPT = "Hi John Smith"
IDS = list(PROMPT.encode())  # the fake local tokenizer: one token per byte


def complete(client: TestClient, prompt: Any, model: str = "tiny", **extra: Any) -> Any:
    body = {"model": model, "prompt": prompt, "max_tokens": 8, **extra}
    return client.post("/v1/completions", json=body)


def test_the_model_reads_the_ids_and_everything_else_their_text(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    response = complete(client, IDS, echo=True)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"].startswith(PROMPT)  # echo shows the text
    sent = fake_backend(gateway, "tiny").requests[-1]
    assert isinstance(sent, TextRequest)
    assert sent.prompt_tokens == IDS
    assert sent.prompt_text == PROMPT


def test_a_batch_of_token_id_prompts_answers_each(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    response = complete(client, [IDS, list(b"Bye")])
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 2
    sent = fake_backend(gateway, "tiny").requests[-2:]
    assert sorted(r.prompt_tokens or [] for r in sent if isinstance(r, TextRequest)) == sorted(
        [IDS, list(b"Bye")]
    )


@pytest.mark.parametrize(
    ("model", "prompt", "status", "param", "fragment"),
    [
        (
            "auto",
            IDS,
            400,
            "prompt",
            "token ids, read or written, need a local model asked for by id",
        ),
        ("big", IDS, 400, "prompt", "`big` is not one"),  # a cloud tier's tokenizer is not here
        ("nope", IDS, 404, "model", "does not exist"),
        ("tiny", [72, 256], 400, "prompt", "a byte tokenizer has tokens 0 to 255"),
        ("tiny", [72, -1], 400, "prompt", "token ids (integers >= 0)"),
        ("tiny", [72, "a"], 400, "prompt", "prompt must be a text, a list of texts"),
        ("tiny", [[72], []], 400, "prompt", "none of them empty"),
        ("tiny", 5, 400, "prompt", "prompt must be a text, a list of texts"),
        ("tiny", {"text": "hi"}, 400, "prompt", "prompt must be a text, a list of texts"),
    ],
)
def test_token_ids_the_gateway_cannot_read_are_refused(
    api: tuple[TestClient, Gateway],
    model: str,
    prompt: Any,
    status: int,
    param: str,
    fragment: str,
) -> None:
    client, _ = api
    response = complete(client, prompt, model=model)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]


def test_tokenize_and_detokenize_round_trip(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    tokenized = client.post("/tokenize", json={"prompt": PROMPT, "return_token_strs": True})
    assert tokenized.status_code == 200, tokenized.text
    body = tokenized.json()
    assert body["tokens"] == IDS
    assert body["count"] == len(IDS)
    assert body["token_strs"][:2] == ["H", "i"]
    assert body["max_model_len"] > 0
    detokenized = client.post("/detokenize", json={"model": "tiny", "tokens": IDS})
    assert detokenized.json() == {"prompt": PROMPT}
    info = client.get("/tokenizer_info")
    assert info.json()["model"] == "tiny"  # the default model
    assert info.json()["vocab_size"] == 256
    assert "eos_token" in info.json()


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/tokenize", {"model": "big", "prompt": "x"}, 400, "`big` is not one"),
        ("/tokenize", {"model": "auto", "prompt": "x"}, 400, "`auto` is not one"),
        ("/tokenize", {"model": "nope", "prompt": "x"}, 404, "does not exist"),
        ("/tokenize", {"prompt": "x", "messages": []}, 400, "Unrecognized request argument"),
        ("/detokenize", {"tokens": [300]}, 400, "a byte tokenizer has tokens 0 to 255"),
        ("/detokenize", {"tokens": [-5]}, 400, "greater than or equal to 0"),
        ("/detokenize", {"tokens": [True]}, 400, "expected an integer, but got a boolean"),
        ("/tokenize", {"model": "", "prompt": "x"}, 400, "at least 1 character"),
    ],
)
def test_tokenizer_requests_it_cannot_answer_get_openai_errors(
    api: tuple[TestClient, Gateway], path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    client, _ = api
    response = client.post(path, json=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
