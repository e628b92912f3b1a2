"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`serve` runs every check, then hands over (settings, log level) instead of listening."""
    started: list[Any] = []
    monkeypatch.setattr("smallfirst.server.create_app", lambda settings: settings)
    monkeypatch.setattr(
        "smallfirst.server.runner.run_server",
        lambda app, settings, log_level: started.append((settings, log_level)),
    )
    monkeypatch.setattr("smallfirst.cli.serve._show_gateway_log", lambda level: None)
    return started
