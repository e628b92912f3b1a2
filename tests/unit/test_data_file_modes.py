"""The files the gateway keeps in its data dir (prompts and answers with `log_prompts`,
documents' text, conversations) are readable by their user only, whatever the umask, and
so are the folders it makes for them."""

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
from smallfirst.rag.store import open_store
from smallfirst.routing.features import embed_texts
from smallfirst.routing.label import LabelJob, label_file
from smallfirst.service import Gateway
from tests.helpers import chat_body, eventually, fake_client, fake_settings


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


def _folder_modes(top: Path) -> dict[str, int]:
    """The mode of `top` and of every folder under it, by path relative to `top`'s parent."""
    folders = [top, *(path for path in top.rglob("*") if path.is_dir())]
    return {
        str(path.relative_to(top.parent)): stat.S_IMODE(path.stat().st_mode) for path in folders
    }


def _file_modes(top: Path) -> dict[str, int]:
    return {
        str(path.relative_to(top)): stat.S_IMODE(path.stat().st_mode)
        for path in top.rglob("*")
        if path.is_file()
    }


def test_a_data_dir_the_gateway_makes_and_the_folders_above_it_are_their_users_only(
    tmp_path: Path,
) -> None:
    """They were 0755: any user of the machine could list the files in them."""
    data_dir = tmp_path / "made" / "data"
    client, _ = fake_client(fake_settings(data_dir))
    with client:
        body = chat_body("big", user="ann@example.com")  # pseudonymized: makes the key
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        stored = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"})
        assert stored.status_code == 200
    assert {"pseudonym.key", "requests.db", "responses.db"} <= set(_file_modes(data_dir))
    assert set(_file_modes(data_dir).values()) == {0o600}
    assert _folder_modes(tmp_path / "made") == {"made": 0o700, "made/data": 0o700}


def test_a_rag_store_folder_the_gateway_makes_is_its_users_only(tmp_path: Path) -> None:
    with closing(open_store(tmp_path / "rag" / "data", in_memory_copies=False)):
        pass
    assert _folder_modes(tmp_path / "rag") == {"rag": 0o700, "rag/data": 0o700}


def test_a_folder_that_is_there_keeps_its_mode(tmp_path: Path) -> None:
    """One its owner shares with a group on purpose stays shared; a file made in it is private."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    with closing(open_store(shared, in_memory_copies=False)):
        pass
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750
    assert set(_modes(shared, "rag.sqlite").values()) == {0o600}


async def test_router_labels_hold_prompts_and_answers_for_their_user_only(tmp_path: Path) -> None:
    gateway = Gateway(fake_settings(tmp_path))
    rows = [{"id": "q0", "messages": [{"role": "user", "content": "q"}], "reference": "#### 7"}]
    out = tmp_path / "labels" / "out.jsonl"
    try:
        await label_file(gateway, rows, out, LabelJob("tiny", "big", None), 1, lambda: None)
    finally:
        await gateway.aclose()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700


def test_the_router_embeddings_cache_is_its_users_only(tmp_path: Path) -> None:
    """The vectors of the prompts tell much of their text."""
    embed_texts(["my secret prompt"], cache_dir=tmp_path / "cache")
    assert _folder_modes(tmp_path / "cache") == {"cache": 0o700}
    assert _file_modes(tmp_path / "cache") == {"embeddings.npz": 0o600}
