"""`logit_bias` with the real bundled model: token ids of its own vocabulary, biased before
sampling, greedy or not; an id the vocabulary lacks is a 400."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.config import BUNDLED_MODEL
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def vocabulary() -> Iterator[Any]:
    from llama_cpp import Llama

    llm = Llama(str(resolve_model_path(BUNDLED_MODEL)), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def token_id(vocabulary: Any, text: str) -> int:
    tokens = vocabulary.tokenize(text.encode(), add_bos=False, special=False)
    assert len(tokens) == 1, f"{text!r} is {len(tokens)} tokens"
    return int(tokens[0])


def post(gateway: Server, path: str, **body: Any) -> httpx.Response:
    request = {"model": "smollm2-135m", "max_tokens": 3, **body}
    return httpx.post(f"{gateway.url}/v1/{path}", json=request, timeout=120)


def answer_text(gateway: Server, **body: Any) -> str:
    response = post(gateway, "completions", prompt=PROMPT, **body)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["text"])


def test_a_banned_token_is_not_chosen(gateway: Server, vocabulary: Any) -> None:
    first = answer_text(gateway, temperature=0, max_tokens=1)
    assert answer_text(gateway, temperature=0, max_tokens=1) == first  # greedy: repeatable
    banned = {str(token_id(vocabulary, first)): -100}
    assert answer_text(gateway, temperature=0, max_tokens=1, logit_bias=banned) != first


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.8, "seed": 7}])
def test_a_token_biased_by_100_is_chosen(
    gateway: Server, vocabulary: Any, sampling: dict[str, Any]
) -> None:
    forced = {str(token_id(vocabulary, " banana")): 100}
    assert answer_text(gateway, **sampling, logit_bias=forced) == " banana" * 3
    response = post(
        gateway,
        "chat/completions",
        messages=[{"role": "user", "content": "Hi"}],
        logit_bias=forced,
        **sampling,
    )
    assert response.json()["choices"][0]["message"]["content"] == " banana" * 3


def test_a_token_outside_the_vocabulary_is_a_400(gateway: Server, vocabulary: Any) -> None:
    size = vocabulary.n_vocab()
    response = post(gateway, "completions", prompt=PROMPT, logit_bias={str(size): 5})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "logit_bias"
    assert f"tokens 0 to {size - 1}" in error["message"]


def test_a_token_longer_than_32_bytes_is_written_whole(gateway: Server, vocabulary: Any) -> None:
    """llama-cpp-python reads a token's text into 32 bytes: 64 dashes (one token here, as
    are deep indentations) came out as nothing, in answers, logprobs, echoes and /detokenize."""
    rule = "-" * 64
    forced = {str(token_id(vocabulary, rule)): 100}
    response = post(
        gateway,
        "completions",
        prompt="Title\n",
        temperature=0,
        logit_bias=forced,
        logprobs=0,
        echo=True,
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["text"] == "Title\n" + rule * 3
    assert choice["logprobs"]["tokens"][-3:] == [rule] * 3
    detokenized = httpx.post(
        f"{gateway.url}/detokenize",
        json={"model": "smollm2-135m", "tokens": [token_id(vocabulary, rule)]},
        timeout=120,
    )
    assert detokenized.json()["prompt"] == rule
