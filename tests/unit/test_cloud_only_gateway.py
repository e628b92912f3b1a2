"""`auto` on a gateway whose every model is remote, when a request must stay local: the
reason's own error, never a 500, and nothing sent upstream."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import chat_body, fake_backend, fake_client, fake_settings

CLOUD_ONLY = [
    {
        "id": "big",
        "tier": "cloud",
        "backend": "fake",
        "replies": ["From the cloud."],
        "input_cost_per_1m": 2.0,
        "output_cost_per_1m": 8.0,
    },
]
EMAIL = "jane.doe@example.com"


def test_pii_that_must_stay_local_is_refused_with_pii_blocked(tmp_path: Path) -> None:
    local_only = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    settings = fake_settings(tmp_path, models=CLOUD_ONLY, privacy=local_only)
    client, gateway = fake_client(settings)
    with client:
        body = chat_body("auto", messages=[{"role": "user", "content": f"Mail {EMAIL} now"}])
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "pii_blocked"
        assert "EMAIL_ADDRESS" in error["message"]
        assert "no local model" in error["message"]
        assert EMAIL not in response.text
        assert not fake_backend(gateway, "big").requests


def test_a_spent_budget_refuses_auto_as_a_spent_quota(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, models=CLOUD_ONLY, routing={"budget": {"daily_usd": 1e-9}})
    client, gateway = fake_client(settings)
    with client:
        first = client.post("/v1/chat/completions", json=chat_body("auto"))
        assert first.status_code == 200, first.text  # the budget is not spent yet
        second = client.post("/v1/chat/completions", json=chat_body("auto"))
        assert second.status_code == 429, second.text
        error = second.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
        assert "every model of this gateway is remote" in error["message"]
        assert len(fake_backend(gateway, "big").requests) == 1
