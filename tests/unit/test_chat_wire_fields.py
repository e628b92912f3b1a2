"""Chat request fields as OpenAI's API takes them, whichever tier would answer."""

import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from tests.helpers import chat_body, fake_backend


@pytest.mark.parametrize("limits", [(5, 5), (3, 8)])
def test_both_token_limits_are_openais_400(
    api: tuple[TestClient, Gateway], limits: tuple[int, int]
) -> None:
    """Local models used max_completion_tokens and dropped max_tokens, and a remote tier got
    both, which OpenAI refuses: the same request answered here failed in the cloud."""
    client, _ = api
    max_tokens, max_completion_tokens = limits
    body = chat_body(max_tokens=max_tokens, max_completion_tokens=max_completion_tokens)
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("max_tokens", "invalid_parameter_combination")
    assert "'max_tokens' and 'max_completion_tokens' at the same time" in error["message"]


def test_either_token_limit_alone_is_sent_as_given(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    for field in ("max_tokens", "max_completion_tokens"):
        body = chat_body("big", **{field: 4})
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        sent = fake_backend(gateway, "big").requests[-1].openai_body()
        assert (sent[field], sent.keys() & {"max_tokens", "max_completion_tokens"}) == (4, {field})


def test_an_assistant_turns_refusal_parts_are_its_refusal(api: tuple[TestClient, Gateway]) -> None:
    """OpenAI's SDK types allow refusal parts in assistant content; they were a 400 saying the
    models here read text only."""
    client, gateway = api
    refused = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Well. "},
            {"type": "refusal", "refusal": "I can't help with that."},
        ],
    }
    messages = [{"role": "user", "content": "Hi"}, refused, {"role": "user", "content": "Why?"}]
    response = client.post("/v1/chat/completions", json=chat_body("big", messages=messages))
    assert response.status_code == 200
    sent = fake_backend(gateway, "big").requests[-1].openai_body()["messages"][1]
    assert sent["content"] == [{"type": "text", "text": "Well. "}]
    assert sent["refusal"] == "I can't help with that."
    bad = [*messages[:1], {"role": "assistant", "content": [{"type": "refusal"}]}]
    error = client.post("/v1/chat/completions", json=chat_body(messages=bad)).json()["error"]
    assert error["param"] == "messages.1.content.0.refusal"
    from_user = [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]
    from_user_refused = client.post("/v1/chat/completions", json=chat_body(messages=from_user))
    assert from_user_refused.status_code == 400
