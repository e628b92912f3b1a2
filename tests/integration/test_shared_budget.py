"""Two `smallfirst serve` processes on one data dir share its daily budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, cloud_model, start_server

pytestmark = pytest.mark.integration


def ask(server: Server, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def test_once_one_gateway_spent_the_budget_the_other_refuses_the_paid_model(
    tmp_path: Path, upstream: Server
) -> None:
    """Each gateway enforced the budget alone: two on one data dir spent $0.104 of $0.05
    (docs/routing.md)."""
    config = {
        "data_dir": str(tmp_path / "shared-data"),
        "privacy": {"enabled": False},
        "models": [
            {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["local"]},
            cloud_model("cloud-model", upstream, "upstream-model"),
        ],
        "routing": {"budget": {"daily_usd": 1e-9}},
    }
    first = start_server(config, tmp_path / "first")
    second = start_server(config, tmp_path / "second")
    try:
        assert ask(first, "cloud-model").status_code == 200
        # Asked for the local tier, the second says in its reason when it sees the budget spent
        # (the log is written and read every 0.05 s): a hang guard, not a timing.
        for _ in range(200):
            reason = ask(second, "auto", route="edge").json()["smallfirst"]["reason"]
            if "daily budget" in reason:
                break
            time.sleep(0.1)
        assert "daily budget $1e-09 spent" in reason
        refused = ask(second, "cloud-model")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
    finally:
        first.stop()
        second.stop()
