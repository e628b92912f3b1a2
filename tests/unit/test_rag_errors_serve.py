"""A RAG store the server cannot use (another version's, damaged) costs only the requests for
`rag/<collection>`: the model list stays whole, and the problem is told once, with its fix."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.rag.store import STORE_FILENAME
from tests.helpers import chat_body, fake_client, fake_settings
from tests.unit.test_rag_errors import damaged, needing_reindex

PLAIN_MODELS = ["tiny", "big", "all-minilm-l6-v2", "auto"]


def serve_three_model_lists_and_a_rag_request(data: Path) -> tuple[Any, Any]:
    client, _ = fake_client(fake_settings(data))
    with client:
        for _ in range(3):
            listed = client.get("/v1/models")
            assert listed.status_code == 200, listed.text
            assert [m["id"] for m in listed.json()["data"]] == PLAIN_MODELS
        assert client.post("/v1/chat/completions", json=chat_body("tiny")).status_code == 200
        grounded = client.post(
            "/v1/chat/completions",
            json=chat_body("rag/kb", messages=[{"role": "user", "content": "vacation?"}]),
        )
    return grounded.status_code, grounded.json()["error"]


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "smallfirst.rag_step"]


def test_a_store_needing_reindex_fails_only_rag_requests_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: every GET /v1/models was a 400, so model pickers broke for everyone."""
    data = needing_reindex(tmp_path)
    with caplog.at_level(logging.WARNING, logger="smallfirst"):
        status, error = serve_three_model_lists_and_a_rag_request(data)
    assert (status, error["code"]) == (400, "rag_reindex_needed")
    assert "`smallfirst rag reindex`" in error["message"]
    # the server's folders are for its log (as a router's that cannot be loaded)
    assert str(tmp_path) not in error["message"]
    [warning] = store_warnings(caplog)
    assert f"run `smallfirst rag reindex --data-dir {data}`" in warning


def test_a_damaged_store_is_a_503_saying_so_for_rag_requests_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: GET /v1/models was a 500 "unhandled error" with a traceback in the log."""
    data = damaged(tmp_path)
    with caplog.at_level(logging.WARNING, logger="smallfirst"):
        status, error = serve_three_model_lists_and_a_rag_request(data)
    assert (status, error["type"], error["code"]) == (503, "api_error", "rag_store_unusable")
    assert "cannot use its RAG store" in error["message"]
    assert str(tmp_path) not in error["message"]
    [warning] = store_warnings(caplog)
    assert f"{data / STORE_FILENAME} is damaged" in warning
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_startup_warns_of_a_store_needing_reindex_with_the_command_that_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Before, nothing was said until the model list failed."""
    data = needing_reindex(tmp_path)
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(data))
    monkeypatch.setattr("smallfirst.server.create_app", lambda settings: settings)
    monkeypatch.setattr("smallfirst.server.runner.run_server", lambda *args: None)
    monkeypatch.setattr("smallfirst.cli.serve._show_gateway_log", lambda *_: None)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if STORE_FILENAME in line]
    assert warning.startswith(f"warning: {data / STORE_FILENAME} was indexed with embedder")
    assert f"run `smallfirst rag reindex --data-dir {data}`" in warning
    assert warning.endswith("; until then no RAG collection is served")
