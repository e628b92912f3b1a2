"""`echo` on /v1/completions with the real bundled model: the prompt comes back with each
token's logprob given the tokens before it (a prompt scored, as evaluation harnesses ask),
the same numbers `llama_cpp.Llama` gives, and the answer continues as without echo."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.config import BUNDLED_MODEL
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
LONG = " ".join(f"Step {i}: add {i} to the total." for i in range(40))  # read in pieces
PROMPTS = ["The capital of France is", "Héllo wörld: ünïcode splits across tokens", LONG]


def complete(gateway: Server, **body: Any) -> dict[str, Any]:
    request = {"model": "smollm2-135m", "temperature": 0, **body}
    response = httpx.post(f"{gateway.url}/v1/completions", json=request, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_echoed_prompt_is_scored_as_llama_cpp_scores_it(gateway: Server) -> None:
    for prompt in PROMPTS:
        ours = complete(gateway, prompt=prompt, max_tokens=0, echo=True, logprobs=2)
        choice = ours["choices"][0]
        assert choice["text"] == prompt  # whole characters, though tokens split some
        assert choice["finish_reason"] == "length"
        assert ours["usage"]["completion_tokens"] == 0
        scored = choice["logprobs"]["token_logprobs"]
        assert scored[0] is None  # nothing predicts the first token (no BOS here)
        reference = reference_logprobs(prompt)
        assert len(scored) == len(reference) + 1 == ours["usage"]["prompt_tokens"]
        assert scored[1:] == pytest.approx(reference, abs=1e-3)


def reference_logprobs(prompt: str | list[int]) -> list[float]:
    """Each prompt token's logprob after the ones before it, from `Llama`'s logits of the
    whole prompt (text, or token ids) evaluated at once. (`Llama.create_completion(echo=True)`'s
    own logprobs are not used: in llama-cpp-python 0.3.36 they came out near -10 for every
    token.)"""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(str(resolve_model_path(BUNDLED_MODEL)), n_ctx=1024, logits_all=True, verbose=False)
    try:
        tokens = (
            prompt
            if isinstance(prompt, list)
            else llm.tokenize(prompt.encode(), add_bos=True, special=False)
        )
        llm.eval(tokens)
        logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return [float(log_probs[i, tokens[i + 1]]) for i in range(len(tokens) - 1)]
    finally:
        llm.close()


def test_an_echoed_answer_is_the_prompt_then_the_answer_without_echo(gateway: Server) -> None:
    plain = complete(gateway, prompt=PROMPTS[0], max_tokens=6)
    echoed = complete(gateway, prompt=PROMPTS[0], max_tokens=6, echo=True)
    assert echoed["choices"][0]["text"] == PROMPTS[0] + plain["choices"][0]["text"]
    assert echoed["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]


def test_answers_to_one_context_are_scored_from_what_the_first_one_read(gateway: Server) -> None:
    """A harness scores each answer to a question as its own echoed prompt. The second and
    later keep the context and its scores from the first, read only their own tokens, and
    score every token as the whole prompt read alone does; asking more alternatives than
    were kept reads it all again, and fewer takes the kept ones cut down."""
    steps = " ".join(f"Step {i}: add {i} to the total." for i in range(30))
    context = f"Question: {steps}\nWhich step comes first?\nAnswer:"  # < 512 tokens: the
    # reference reads it in one batch (a second batch rounds its rows differently)
    endings = [" Step 0", " Step 1", " Step 39", " The first one"]
    for position, ending in enumerate(endings):
        prompt = context + ending
        scored = complete(gateway, prompt=prompt, max_tokens=0, echo=True, logprobs=1)
        choice = scored["choices"][0]
        assert choice["text"] == prompt
        assert choice["logprobs"]["token_logprobs"][1:] == pytest.approx(
            reference_logprobs(prompt), abs=1e-3
        )
        assert _alternatives(choice, 1)
        cached = scored["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert (cached > 300) == (position > 0), (position, cached)
    wider = complete(gateway, prompt=context + endings[0], max_tokens=0, echo=True, logprobs=3)
    assert wider["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert _alternatives(wider["choices"][0], 3)
    narrower = complete(gateway, prompt=context + endings[1], max_tokens=0, echo=True, logprobs=1)
    assert narrower["usage"]["prompt_tokens_details"]["cached_tokens"] > 300
    assert _alternatives(narrower["choices"][0], 1)


def _alternatives(choice: dict[str, Any], asked: int) -> bool:
    """Each scored token came with the `asked` most likely alternatives and itself among them
    (OpenAI's up to `logprobs` + 1: one more when it was not among the most likely)."""
    logprobs = choice["logprobs"]
    return all(
        token in top and len(top) in (asked, asked + 1)
        for token, top in zip(logprobs["tokens"][1:], logprobs["top_logprobs"][1:], strict=True)
    )


# An MMLU question (MIT): after the first answer, each next one reads only the question's
# last token and its own letter. Read alone, as one row, that token's logits came out of
# other llama.cpp kernels, and " B" scored 0.17 off a whole read.
KIRKWOOD = (
    "Kirkwood gaps are observed in the main asteroid belt including at the position(s) where:"
    "\nA. asteroids would orbit with a period half that of Jupiter\nB. asteroids would orbit"
    " with a period twice that of Jupiter\nC. asteroids would orbit with a period twice that"
    " of Mars\nD. A and B\nAnswer:"
)


def test_one_letter_answers_score_as_a_whole_read_scores_them(gateway: Server) -> None:
    def tokens(text: str) -> list[int]:
        body = {"prompt": text, "add_special_tokens": False}
        return list(httpx.post(f"{gateway.url}/tokenize", json=body, timeout=60).json()["tokens"])

    context = tokens(KIRKWOOD)
    for position, letter in enumerate("ABCD"):
        prompt = context + tokens(f" {letter}")
        scored = complete(gateway, prompt=[prompt], max_tokens=1, echo=True, logprobs=1)
        logprobs = scored["choices"][0]["logprobs"]["token_logprobs"][1 : len(prompt)]
        assert logprobs == pytest.approx(reference_logprobs(prompt), abs=1e-3), letter
        cached = scored["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert (cached > 0) == (position > 0)


def test_a_prompt_as_long_as_the_context_can_be_scored(gateway: Server) -> None:
    """`max_tokens: 0` asks for no room beyond the prompt: a prompt of exactly the context's
    length is scored (it was a 400 saying "513 tokens (512 in the prompt, 0 ...)")."""
    context = 2048  # the gateway fixture's
    ids = [28] * context  # any ordinary token, repeated
    scored = complete(gateway, prompt=ids, echo=True, max_tokens=0, logprobs=0)
    assert scored["usage"]["prompt_tokens"] == context
    assert len(scored["choices"][0]["logprobs"]["token_logprobs"]) == context
    over = httpx.post(
        f"{gateway.url}/v1/completions",
        json={"model": "smollm2-135m", "prompt": ids, "max_tokens": 1},
        timeout=60,
    )
    assert over.status_code == 400
    assert "2049 tokens (2048 in the prompt, 1 in the completion)" in over.text


@pytest.mark.parametrize(("prompt", "offsets"), [("😀", [0, 0, 0]), ("😀cd", [0, 0, 0, 1])])
def test_a_character_the_prompt_begins_with_starts_each_of_its_tokens(
    gateway: Server, prompt: str, offsets: list[int]
) -> None:
    """The first token's bytes count as the others do: an emoji split over three tokens
    starts all three at 0 (the first began at 0 and the next two after the emoji)."""
    logprobs = complete(gateway, prompt=prompt, max_tokens=0, echo=True, logprobs=1)
    assert logprobs["choices"][0]["logprobs"]["text_offset"] == offsets
