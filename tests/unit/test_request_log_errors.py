"""A request log that does not open is one line naming it and what to do, in `serve` as in
`stats`, never a traceback."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.logs import RequestLog, RequestRecord


def config(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    return str(path)


def test_serve_on_a_damaged_log_names_it_and_does_not_start(
    tmp_path: Path, served: list[Any]
) -> None:
    """It stopped at startup with a traceback ("Application startup failed", exit 3)."""
    log_path = tmp_path / "requests.db"
    log = RequestLog(log_path)
    for number in range(200):
        log.record(
            RequestRecord(id=str(number), created_at=0, endpoint="chat", model_requested="m")
        )
    log.close()
    os.truncate(log_path, 8192)
    result = CliRunner().invoke(app, ["serve", "-c", config(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {log_path} is not a request log (database disk image is malformed):"
        " move it aside, with its -wal and -shm files if any, to start a new log\n"
    )
    assert served == []


def test_stats_in_a_folder_it_cannot_write_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes beside the log even to read it; its "unable to open database file" was
    all it said. (Root writes anywhere but a read-only mount: both are stood in for here.)"""
    RequestLog(tmp_path / "requests.db").close()
    can_write = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != tmp_path and can_write(path, mode))

    def unable_to_open(path: Path) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr("smallfirst.logs.stats.connect", unable_to_open)
    result = CliRunner().invoke(app, ["stats", "-c", config(tmp_path)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot read the request log {tmp_path / 'requests.db'} (unable to open database"
        f" file): {tmp_path} is not writable, and SQLite writes there even to read the log\n"
    )
