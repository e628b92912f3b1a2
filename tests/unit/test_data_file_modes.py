"""The files the gateway keeps in its data dir (prompts and answers with `log_prompts`,
documents' text, conversations) are readable by their user only, whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from smallfirst.cli.rag import INGEST_LOCK
from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.paths import exclusive_lock
from smallfirst.rag.sqlite_store import SqliteChunkStore
from tests.helpers import eventually


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """Most systems' default: new files readable by every user of the machine."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _modes(folder: Path, name: str) -> dict[str, int]:
    """The mode of the database `name` in `folder` and of its -wal and -shm files."""
    return {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in folder.iterdir()
        if path.name.startswith(name)
    }


def _rows(log_file: Path) -> int:
    with closing(sqlite3.connect(log_file)) as connection:
        count: int = connection.execute("SELECT count(*) FROM requests").fetchone()[0]
    return count


def test_a_new_request_log_and_its_wal_are_readable_by_their_user_only(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.db")
    try:
        log.record(
            RequestRecord(
                id="1", created_at=1, endpoint="chat", model_requested="m", prompt="my secret"
            )
        )
        assert eventually(lambda: _rows(tmp_path / "requests.db") == 1)
        modes = _modes(tmp_path, "requests.db")  # the -wal and -shm go when the log closes
    finally:
        log.close()
    assert set(modes) >= {"requests.db", "requests.db-wal", "requests.db-shm"}
    assert set(modes.values()) == {0o600}


def test_a_new_rag_store_and_its_wal_are_readable_by_their_user_only(tmp_path: Path) -> None:
    with closing(SqliteChunkStore(tmp_path / "rag.sqlite")):
        modes = _modes(tmp_path, "rag.sqlite")
    assert set(modes) >= {"rag.sqlite", "rag.sqlite-wal", "rag.sqlite-shm"}
    assert set(modes.values()) == {0o600}


def test_the_ingest_lock_beside_the_rag_store_is_its_users_only(tmp_path: Path) -> None:
    """It was made 0644: another user could open it and hold the lock, stopping every
    ingest."""
    with exclusive_lock(tmp_path / INGEST_LOCK, on_wait=lambda: None):
        mode = stat.S_IMODE((tmp_path / INGEST_LOCK).stat().st_mode)
    assert mode == 0o600
