"""`echo` and `max_tokens: 0` on /v1/completions, with fake backends."""

from __future__ import annotations

from starlette.testclient import TestClient

from smallfirst.answers import RouteInfo
from smallfirst.completions import Completion, ModelInfo, TokenLogprob, TopLogprob, Usage
from smallfirst.routing.cascade import confidence
from smallfirst.server.render import completion_body
from smallfirst.service import Gateway
from smallfirst.types import TextRequest
from tests.helpers import fake_backend


def test_the_answer_starts_with_the_prompt(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "tiny", "prompt": "Once upon", "echo": True, "logprobs": 0}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    assert choice["text"] == "Once upon" + "Hello from tiny."
    assert choice["logprobs"]["tokens"][:2] == ["Once", " upon"]


def test_max_tokens_0_scores_the_prompt_and_needs_echo(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    scored = client.post(
        "/v1/completions",
        json={"model": "tiny", "prompt": "Once upon", "echo": True, "max_tokens": 0},
    ).json()
    assert scored["choices"][0]["text"] == "Once upon"
    assert scored["choices"][0]["finish_reason"] == "length"
    assert scored["usage"]["completion_tokens"] == 0
    refused = client.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 0})
    assert refused.status_code == 400
    assert "max_tokens 0 only makes sense with echo" in refused.json()["error"]["message"]


def test_an_echoed_prompt_comes_back_with_its_values_restored(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    prompt = "Write to john.smith@example.com about"
    body = {"model": "big", "prompt": prompt, "echo": True}
    answer = client.post("/v1/completions", json=body).json()
    sent = fake_backend(gateway, "big").requests[-1]
    assert "john.smith@example.com" not in getattr(sent, "prompt", "")
    assert answer["choices"][0]["text"] == prompt + "Hello from big."


def test_a_token_nothing_predicts_does_not_count_toward_confidence() -> None:
    unscored = TokenLogprob(token="The", logprob=None)
    sure = confidence([unscored, TokenLogprob(token=" end", logprob=-0.5)])
    assert (sure.tokens, sure.mean_logprob) == (1, -0.5)


def test_the_first_echoed_token_has_no_alternatives_as_openai_says_it() -> None:
    """`top_logprobs` was `{}` there; OpenAI (and vLLM) send null where `token_logprobs` is."""
    request = TextRequest.model_validate({"model": "tiny", "prompt": "Once", "echo": True})
    model = ModelInfo(id="tiny", tier="edge", backend="fake", context_length=100)
    route = RouteInfo(model=model, router="none", reason="asked for by id")
    top = [TopLogprob(token="!", logprob=-0.1)]
    tokens = [
        TokenLogprob(token="Once", logprob=None),
        TokenLogprob(token="!", logprob=-0.1, top=top),
    ]
    answer = Completion(text="Once!", logprobs=tokens, finish_reason="stop")
    logprobs = completion_body(request, [answer], Usage(), route, "r1")["choices"][0]["logprobs"]
    assert logprobs["token_logprobs"] == [None, -0.1]
    assert logprobs["top_logprobs"] == [None, {"!": -0.1}]


def test_a_tokens_alternatives_include_the_token_itself_as_openai_sends_them() -> None:
    """OpenAI's legacy `logprobs`: "The API will always return the logprob of the sampled
    token, so there may be up to logprobs+1 elements". A token outside the top alternatives
    (sampled, or an echoed prompt's) was missing from its own `top_logprobs`, and
    `logprobs: 0` gave `{}` for every token."""
    request = TextRequest.model_validate({"model": "tiny", "prompt": "Once", "logprobs": 1})
    model = ModelInfo(id="tiny", tier="edge", backend="fake", context_length=100)
    route = RouteInfo(model=model, router="none", reason="asked for by id")
    tokens = [
        TokenLogprob(token=" upon", logprob=-2.5, top=[TopLogprob(token=" more", logprob=-0.2)]),
        TokenLogprob(token=" a", logprob=-0.1, top=[TopLogprob(token=" a", logprob=-0.1)]),
        TokenLogprob(token=" time", logprob=-0.3),  # logprobs: 0
    ]
    answer = Completion(text=" upon a time", logprobs=tokens, finish_reason="stop")
    logprobs = completion_body(request, [answer], Usage(), route, "r1")["choices"][0]["logprobs"]
    assert logprobs["top_logprobs"] == [
        {" more": -0.2, " upon": -2.5},
        {" a": -0.1},
        {" time": -0.3},
    ]
