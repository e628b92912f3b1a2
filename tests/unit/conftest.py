"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from smallfirst.privacy import PiiDetector
    from smallfirst.rag import SqliteChunkStore
    from smallfirst.service import Gateway


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`serve` runs every check, then hands over (settings, log level) instead of listening."""
    started: list[Any] = []
    monkeypatch.setattr("smallfirst.server.create_app", lambda settings: settings)
    monkeypatch.setattr(
        "smallfirst.server.runner.run_server",
        lambda app, settings, log_level: started.append((settings, log_level)),
    )
    monkeypatch.setattr("smallfirst.cli.serve._show_gateway_log", lambda *_: None)
    return started


@pytest.fixture(scope="session")
def detector() -> PiiDetector:
    """The process-wide PII detector, its models loaded."""
    from smallfirst.privacy import shared_detector

    found = shared_detector()
    found.warm_up()
    return found


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    """A gateway with fake backends (tests/helpers.py) and its client, lifespan running."""
    from tests.helpers import fake_client, fake_settings

    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        yield client, gateway


@pytest.fixture(scope="module")
def module_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Gateway]]:
    """`api` shared by a module's tests: for many requests that need no fresh gateway each."""
    from tests.helpers import fake_client, fake_settings

    client, gateway = fake_client(fake_settings(tmp_path_factory.mktemp("gateway")))
    with client:
        yield client, gateway


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteChunkStore]:
    """An empty RAG store in the test's folder."""
    from smallfirst.rag import SqliteChunkStore

    opened = SqliteChunkStore(tmp_path / "rag.sqlite")
    yield opened
    opened.close()
