"""Prompts as token ids with the real bundled model, as evaluation harnesses send them after
`/tokenize`: the same answers, token counts and prompt scores as the text."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
CONTEXT, CONTINUATION = "Question: What is the capital of France?\nAnswer:", " Paris"


def post(gateway: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{gateway.url}{path}", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def tokens_of(gateway: Server, text: str, add_special_tokens: bool = True) -> list[int]:
    body = {"prompt": text, "add_special_tokens": add_special_tokens}
    return list(post(gateway, "/tokenize", body)["tokens"])


def complete(gateway: Server, prompt: Any, **extra: Any) -> dict[str, Any]:
    body = {"model": "smollm2-135m", "prompt": prompt, "temperature": 0, **extra}
    return post(gateway, "/v1/completions", body)


def test_ids_answer_as_their_text_does(gateway: Server) -> None:
    ids = tokens_of(gateway, CONTEXT)
    by_text = complete(gateway, CONTEXT, max_tokens=8)
    by_ids = complete(gateway, ids, max_tokens=8)
    assert by_ids["choices"][0]["text"] == by_text["choices"][0]["text"]
    assert by_ids["usage"]["prompt_tokens"] == by_text["usage"]["prompt_tokens"] == len(ids)
    assert post(gateway, "/detokenize", {"tokens": ids})["prompt"] == CONTEXT


def test_a_harness_scores_a_continuation_from_ids(gateway: Server) -> None:
    """lm-evaluation-harness's loglikelihood request: context and continuation tokenized
    apart and joined, echoed with one more token, the continuation's logprobs summed."""
    context = tokens_of(gateway, CONTEXT, add_special_tokens=False)
    continuation = tokens_of(gateway, CONTINUATION, add_special_tokens=False)
    scored = complete(
        gateway, [context + continuation], max_tokens=1, logprobs=1, echo=True, seed=1234
    )
    logprobs = scored["choices"][0]["logprobs"]
    assert len(logprobs["token_logprobs"]) == len(context) + len(continuation) + 1
    assert context + continuation == tokens_of(gateway, CONTEXT + CONTINUATION)  # no BOS here
    by_text = complete(gateway, CONTEXT + CONTINUATION, max_tokens=0, logprobs=1, echo=True)
    text_logprobs = by_text["choices"][0]["logprobs"]["token_logprobs"]
    assert logprobs["token_logprobs"][:-1] == pytest.approx(text_logprobs, abs=1e-4)
    answer = logprobs["token_logprobs"][len(context) : -1]
    assert len(answer) == len(continuation)
    assert all(value is not None and value < 0 for value in answer)


def test_an_empty_text_tokenizes_as_a_completion_reads_it(gateway: Server) -> None:
    """The model's start token, as an empty prompt is read (OpenAI's legacy completions start
    a text): `/tokenize` said 0 tokens while the completion counted 1 prompt token."""
    start = tokens_of(gateway, "")
    by_text = complete(gateway, "", max_tokens=4)
    by_ids = complete(gateway, start, max_tokens=4)
    assert len(start) == by_text["usage"]["prompt_tokens"] == by_ids["usage"]["prompt_tokens"] == 1
    assert by_ids["choices"][0]["text"] == by_text["choices"][0]["text"]
    assert tokens_of(gateway, "", add_special_tokens=False) == []


def test_the_tokenizer_info_describes_the_model(gateway: Server) -> None:
    info = httpx.get(f"{gateway.url}/tokenizer_info", timeout=30).json()
    assert info["model"] == "smollm2-135m"
    assert info["vocab_size"] > 0
    assert isinstance(info["eos_token"], str)
    assert "{% for message in messages %}" in info["chat_template"]
    assert info["model_max_length"] == 2048
