"""Local models other than the default load at startup (`preload`), so the first request a
router sends up does not wait for weights; a preload never unloads another model."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import Server, loaded_models, start_server

pytestmark = pytest.mark.integration


def small_model(model_id: str, tier: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "tier": tier, "context_length": 1024, "parallel": 1, **extra}


def wait_for(condition: Any, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def server_log(server: Server) -> str:
    return (server.data_dir.parent / "server.log").read_text()


def test_the_other_local_models_load_without_a_request(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    models = [
        small_model("edge-model", "edge"),
        small_model("onprem-model", "onprem"),
        small_model("on-demand", "onprem", preload=False),
    ]
    server = start_server({"models": models}, tmp_path_factory.mktemp("preload"), log_level="info")
    try:
        assert wait_for(lambda: loaded_models(server)["onprem-model"])
        assert wait_for(lambda: "on-demand loads on first use" in server_log(server))
        assert loaded_models(server) == {
            "edge-model": True,
            "onprem-model": True,
            "on-demand": False,
        }
    finally:
        server.stop()


def test_a_model_over_the_memory_budget_waits_for_its_first_request(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two bundled-model ids whose files (~100 MB each) fit the budget together, but whose
    four slots of 8,192 tokens (~750 MB each) do not: the second is loaded, found too big
    beside the first, and let go, and the first stays."""
    config = {
        "local": {"memory_budget_mb": 1200},
        "models": [
            {"id": "first", "tier": "edge", "context_length": 8192, "parallel": 4},
            {"id": "second", "tier": "onprem", "context_length": 8192, "parallel": 4},
        ],
    }
    server = start_server(config, tmp_path_factory.mktemp("over"), log_level="info")
    try:
        assert wait_for(lambda: "second loads on first use" in server_log(server))
        assert loaded_models(server) == {"first": True, "second": False}
    finally:
        server.stop()
