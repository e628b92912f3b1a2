"""`smallfirst serve` shows the gateway's own log lines in uvicorn's format (or as JSON), at its
level."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.cli.serve import _show_gateway_log
from smallfirst.completions import Completion
from smallfirst.server.log_lines import uvicorn_log_config
from smallfirst.types import GenerateRequest, TextRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings


@pytest.fixture
def gateway_log() -> Iterator[logging.Logger]:
    logger = logging.getLogger("smallfirst")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_info_lines_show_at_the_info_level_and_not_at_warning(
    gateway_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    _show_gateway_log("info", "text")
    logging.getLogger("smallfirst.backends").info("loaded m: 4 slot(s)")
    assert capsys.readouterr().err == "INFO:     loaded m: 4 slot(s)\n"
    _show_gateway_log("warning", "text")
    logging.getLogger("smallfirst.backends").info("loaded n")
    assert "loaded n" not in capsys.readouterr().err


def test_uvicorns_trace_level_shows_everything(gateway_log: logging.Logger) -> None:
    _show_gateway_log("trace", "text")
    # DEBUG, or uvicorn's TRACE (5) once a uvicorn.Config has named it (another test's)
    assert gateway_log.level <= logging.DEBUG


def test_json_lines_carry_the_request_id_of_the_request_being_served(
    gateway_log: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """There was no structured log for collectors (systemd, Kubernetes) to read."""
    _show_gateway_log("info", "json")
    client, gateway = fake_client(fake_settings(tmp_path))
    fake_backend(gateway, "tiny").queue(RuntimeError("boom"))
    with client:
        capsys.readouterr()
        failed = client.post("/v1/chat/completions", json=chat_body("tiny"))
    assert failed.status_code == 500
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (line,) = [line for line in lines if line["message"] == "unhandled error"]
    assert (line["level"], line["logger"]) == ("ERROR", "smallfirst")
    assert line["request_id"] == failed.headers["x-request-id"]
    assert "RuntimeError: boom" in line["exc_info"]
    assert line["time"].endswith("+00:00")


def test_json_lines_of_a_batch_carry_each_prompts_own_id_and_the_batchs(
    gateway_log: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every prompt's lines carried the last prompt's id (its context was made last)."""
    _show_gateway_log("info", "json")
    client, gateway = fake_client(fake_settings(tmp_path))
    backend = fake_backend(gateway, "tiny")
    answer_of = backend.complete

    async def complete(request: GenerateRequest) -> Completion:
        assert isinstance(request, TextRequest)
        logging.getLogger("smallfirst.backends").info("answering %s", request.prompt)
        await asyncio.sleep(0)  # the prompts' work interleaves
        return await answer_of(request)

    monkeypatch.setattr(backend, "complete", complete)
    with client:
        capsys.readouterr()
        batch = client.post("/v1/completions", json={"model": "tiny", "prompt": ["a", "b", "c"]})
        backend.queue("fine", RuntimeError("boom"))
        failed = client.post("/v1/completions", json={"model": "tiny", "prompt": ["d", "e"]})
    assert (batch.status_code, failed.status_code) == (200, 500)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    answering = {
        line["message"]: line["request_id"] for line in lines if "answering" in line["message"]
    }
    batch_id, failed_id = batch.headers["x-request-id"], failed.headers["x-request-id"]
    assert answering == {
        "answering a": f"{batch_id}-0",
        "answering b": f"{batch_id}-1",
        "answering c": f"{batch_id}-2",
        "answering d": f"{failed_id}-0",
        "answering e": f"{failed_id}-1",
    }
    (unhandled,) = [line for line in lines if line["message"] == "unhandled error"]
    assert unhandled["request_id"] == f"{failed_id}-1"  # written as "e" failed
    failures = [line for line in lines if line["message"].startswith("request ")]
    assert failures
    assert [line["message"].split()[1] for line in failures] == [
        line["request_id"] for line in failures
    ]


def test_uvicorns_lines_are_json_too_when_asked() -> None:
    config = uvicorn_log_config("json")
    assert {f["()"] for f in config["formatters"].values()} == {
        "smallfirst.server.log_lines.JsonLogFormatter"
    }
    assert uvicorn_log_config("text")["formatters"]["access"]["()"].startswith("uvicorn.")


def test_startup_warnings_are_json_lines_too_when_the_log_is(
    gateway_log: logging.Logger,
    served: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`warning: ...` in plain text came first in a log said to be one JSON object a line."""
    monkeypatch.setattr("smallfirst.cli.serve._show_gateway_log", _show_gateway_log)
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMALLFIRST__SERVER__LOG_FORMAT", "json")
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "k1")  # set but not checked on loopback: a warning
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["level"] for line in lines] == ["WARNING"]
    assert lines[0]["message"].startswith("server.api_keys / SMALLFIRST_API_KEYS: keys are set")
