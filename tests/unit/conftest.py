"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from smallfirst.privacy import PiiDetector


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


@pytest.fixture(scope="session")
def detector() -> PiiDetector:
    """The process-wide PII detector, its models loaded."""
    from smallfirst.privacy import shared_detector

    found = shared_detector()
    found.warm_up()
    return found
