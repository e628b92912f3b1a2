"""Where the fallback chain ends: the models it skips do not turn a request the gateway can
answer (now, or once a model is back) into the client's fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from smallfirst.errors import UpstreamError
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings
from tests.unit.routing_clients import ask, too_long


@pytest.mark.parametrize("cloud", ["fails", "is skipped after failing"])
def test_a_fallback_the_privacy_policy_keeps_the_request_from_is_skipped(
    tmp_path: Path, cloud: str
) -> None:
    """The cloud failed (or was skipped), and on-prem (`block`) refused the request with a
    400 `pii_blocked`: the edge model after it, which the policy allows, was never asked."""
    models = [
        {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["Hello from tiny."]},
        {"id": "mid", "tier": "onprem", "backend": "fake", "replies": ["Hello from mid."]},
        {"id": "big", "tier": "cloud", "backend": "fake", "replies": ["Hello from big."]},
    ]
    privacy = {"tier_policy": {"onprem": "block", "cloud": "redact"}}
    client, gateway = fake_client(fake_settings(tmp_path, models=models, privacy=privacy))
    messages = [{"role": "user", "content": "Mail ana.lopez@example.com about the invoice"}]
    for _ in range(gateway.health.config.failures if cloud != "fails" else 0):
        gateway.health.failed("big", "big: cannot reach upstream")
    with client:
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 503"))
        response = client.post(
            "/v1/chat/completions", json=chat_body("auto", route="cloud", messages=messages)
        )
    assert response.status_code == 200, response.json()
    assert response.json()["model"] == "tiny"
    assert "mid skipped: the privacy policy" in response.json()["smallfirst"]["reason"]
    assert not fake_backend(gateway, "mid").requests


def test_a_prompt_too_long_for_the_weak_choice_while_the_roomier_model_is_down_is_a_503(
    tmp_path: Path,
) -> None:
    """It was the weak model's 400 `context_length_exceeded`: the client shortened a prompt
    that the strong model takes once it is back (and SDKs do not retry a 400)."""
    client, gateway = fake_client(fake_settings(tmp_path))
    for _ in range(gateway.health.config.failures):
        gateway.health.failed("big", "big: cannot reach upstream")
    with client:
        fake_backend(gateway, "tiny").queue(too_long())
        response = ask(client, "hi")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "big skipped" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0
