"""A request log that does not open is one line naming it and what to do, in `serve` as in
`stats`, never a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.logs import RequestLog, RequestRecord
from tests.helpers import eventually, fake_client, fake_settings


def config(tmp_path: Path, **keys: Any) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path), **keys}))
    return str(path)


# `config check` says what `serve` would refuse: it said OK, and serve then did not start
CHECKING_COMMANDS = pytest.mark.parametrize("command", [["serve"], ["config", "check"]])


@CHECKING_COMMANDS
def test_serve_and_config_check_refuse_a_damaged_log_naming_it(
    tmp_path: Path, served: list[Any], command: list[str]
) -> None:
    """It stopped at startup with a traceback ("Application startup failed", exit 3)."""
    log_path = tmp_path / "requests.db"
    logged_rows(log_path, 200)
    os.truncate(log_path, 8192)
    result = CliRunner().invoke(app, [*command, "-c", config(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {log_path} is not a request log (database disk image is malformed):"
        " move it aside, with its -wal and -shm files if any, to start a new log\n"
    )
    assert served == []


def test_config_check_makes_no_log_in_a_new_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = CliRunner().invoke(app, ["config", "check", "-c", config(data_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in data_dir.iterdir()) == ["config.yaml"]


@CHECKING_COMMANDS
def test_serve_and_config_check_refuse_a_log_a_daily_budget_cannot_sum_today_from(
    tmp_path: Path, served: list[Any], command: list[str]
) -> None:
    """A log damaged past its first pages opened, so the server started with one error line
    ("cannot read other processes' spend") and its budgets at $0: the day's spend, already
    over the budget, was spent again."""
    log_path = tmp_path / "requests.db"
    logged_rows(log_path, 200, created_at=time.time())
    damage(log_path)
    budget = {"routing": {"budget": {"daily_usd": 1.0}}}
    result = CliRunner().invoke(app, [*command, "-c", config(tmp_path, **budget)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {log_path} is not a request log (database disk image is malformed):"
        " move it aside, with its -wal and -shm files if any, to start a new log\n"
    )
    assert served == []


def test_serve_on_a_log_it_cannot_write_names_it_and_does_not_start(
    tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite opened it read-only: the server started, and every request's row failed to be
    written ("attempt to write a readonly database"). (Root writes a file whatever its
    permission bits, not an immutable one: the refusal is stood in for here.)"""
    log_path = tmp_path / "requests.db"
    RequestLog(log_path).close()
    opened = Path.open

    def read_only_log(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if path == log_path and mode != "r":
            raise PermissionError(1, "Operation not permitted")
        return opened(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", read_only_log)
    result = CliRunner().invoke(app, ["serve", "-c", config(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot write the request log {log_path}: cannot open it for writing"
        " (Operation not permitted)\n"
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


def test_serve_on_a_full_disk_says_the_disk_is_full(
    tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full disk SQLite could not make the -shm file beside an existing log and said
    "disk I/O error", which reads as a failing disk. (A full disk is stood in for here.)"""
    RequestLog(tmp_path / "requests.db").close()

    def no_room(path: Path) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("smallfirst.logs.store.connect", no_room)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
    result = CliRunner().invoke(app, ["serve", "-c", config(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot read the request log {tmp_path / 'requests.db'} (disk I/O error):"
        f" the disk holding {tmp_path} is full\n"
    )
    assert served == []


def test_a_dashboard_on_a_log_damaged_while_serving_names_it(tmp_path: Path) -> None:
    """It answered 500 and put two tracebacks in the server's log."""
    log_path = tmp_path / "requests.db"
    logged_rows(log_path, 200)
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        damage(log_path)
        page = client.get("/dashboard")
    assert page.status_code == 503
    assert f"{log_path} is not a request log (database disk image is malformed)" in page.text


def test_a_log_deleted_while_serving_is_started_again_at_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer went on into the deleted file: `stats` and the dashboard saw none of the
    rows written after, and they were gone when the gateway stopped, without a word."""
    data_dir = tmp_path / "data"
    log = RequestLog(data_dir / "requests.db")
    try:
        log.record(RequestRecord(id="before", created_at=0, endpoint="chat", model_requested="m"))
        assert eventually(lambda: ids_in(data_dir / "requests.db") == ["before"])
        shutil.rmtree(data_dir)
        log.record(RequestRecord(id="after", created_at=0, endpoint="chat", model_requested="m"))
    finally:
        log.close()
    assert ids_in(data_dir / "requests.db") == ["after"]
    assert "was moved or deleted: a new log is started there" in caplog.text


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM requests ORDER BY id")]


def test_a_log_damaged_while_serving_says_what_to_do_and_one_moved_aside_gets_the_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_path = tmp_path / "data" / "requests.db"
    logged_rows(log_path, 200)
    log = RequestLog(log_path)
    try:
        damage(log_path)
        log.record(RequestRecord(id="new", created_at=0, endpoint="chat", model_requested="m"))
        assert eventually(lambda: "write failed" in caplog.text)
        assert (
            "1 rows wait in memory, 0 dropped so far; move it aside, with its -wal and -shm"
            " files: a new log is started there for them" in caplog.text
        )
        aside = tmp_path / "aside"
        aside.mkdir()
        for file in log_path.parent.iterdir():
            file.rename(aside / file.name)
    finally:
        log.close()
    assert ids_in(log_path) == ["new"]


def logged_rows(path: Path, count: int, created_at: float = 0) -> None:
    log = RequestLog(path)
    for number in range(count):
        log.record(
            RequestRecord(
                id=str(number), created_at=created_at, endpoint="chat", model_requested="m"
            )
        )
    log.close()


def damage(path: Path) -> None:
    """Overwrite the log's rows, past the first pages that opening it reads."""
    with path.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(b"\xff" * 4 * 4096)


@pytest.mark.parametrize(
    "fault",
    [{"prompt_tokens": 2**64}, {"response": "half of a pair: \ud800"}],
    ids=["past SQLite's integers", "a lone surrogate"],
)
def test_a_row_the_log_cannot_hold_is_dropped_alone_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: dict[str, Any]
) -> None:
    """Such a row ended the writer thread: neither it nor any row recorded after it (nor
    those of its batch) was written, and the rows piled up in memory until the end."""
    log_path = tmp_path / "requests.db"
    log = RequestLog(log_path)
    try:
        row = {"created_at": 0, "endpoint": "chat", "model_requested": "m"}
        for name, values in (("before", {}), ("bad", fault), ("beside", {})):
            log.record(RequestRecord(id=name, **row, **values))
        assert eventually(lambda: ids_in(log_path) == ["before", "beside"])
        log.record(RequestRecord(id="later", **row))
        assert eventually(lambda: ids_in(log_path) == ["before", "beside", "later"])
    finally:
        log.close()
    assert log.dropped_rows == 1
    assert f"request log {log_path}: request bad cannot be kept (" in caplog.text
