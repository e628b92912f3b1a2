"""A RAG store that cannot be used as it is (damaged, on a read-only disk, its disk full) or an
ingest stopped by Ctrl-C: one line saying what happened and what to do, never a traceback."""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smallfirst.cli.rag import app
from smallfirst.rag import (
    SqliteChunkStore,
    StoreNeedsReindex,
    StoreUnusable,
    ingest_paths,
    open_store,
)
from smallfirst.rag.sqlite_file import sqlite_module, unusable_store
from smallfirst.rag.store import STORE_FILENAME
from tests.unit.rag_fakes import count_words, fake_embed

runner = CliRunner()


def write_docs(folder: Path, count: int) -> Path:
    folder.mkdir(exist_ok=True)
    for number in range(count):
        (folder / f"doc{number}.md").write_text(f"# Doc {number}\n\nVacation policy {number}.\n")
    return folder


def ingested(tmp_path: Path, documents: int = 2) -> Path:
    """A data dir whose store holds `documents` files in collection `kb` (fake embedder)."""
    data = tmp_path / "data"
    store = open_store(data)
    try:
        docs = write_docs(tmp_path / "docs", documents)
        ingest_paths(
            store, [docs], collection="kb", embed_texts=fake_embed, count_tokens=count_words
        )
    finally:
        store.close()
    return data


def damaged(tmp_path: Path) -> Path:
    """A data dir whose store was cut short, as by a crash or a full disk while copying."""
    data = ingested(tmp_path)
    os.truncate(data / STORE_FILENAME, 20_000)
    return data


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def assert_one_error_line(result: Any, code: int, *parts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for part in parts:
        assert part in result.stderr


def test_a_damaged_store_is_refused_naming_it_and_what_to_do(tmp_path: Path) -> None:
    data = damaged(tmp_path)
    with pytest.raises(StoreUnusable) as refused:
        open_store(data)
    assert refused.value.status == 503
    assert refused.value.message == (
        f"{data / STORE_FILENAME} is damaged (database disk image is malformed): move it aside,"
        " with its -wal and -shm files if any, and ingest the documents again"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["search", "vacation", "-c", "kb", "--method", "bm25"],
        ["collections"],
        ["ingest", "DOCS", "-c", "kb"],
        ["delete", "kb", "--yes"],
        ["reindex"],
    ],
)
def test_rag_commands_on_a_damaged_store_say_so_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """Before: a traceback ending `DatabaseError: database disk image is malformed`."""
    data = damaged(tmp_path)
    args = [str(tmp_path / "docs") if arg == "DOCS" else arg for arg in command]
    result = run(*args, "--data-dir", str(data))
    assert_one_error_line(result, 1, f"{data / STORE_FILENAME} is damaged", "move it aside")


def needing_reindex(tmp_path: Path) -> Path:
    """A data dir whose store another embedder indexed."""
    data = ingested(tmp_path)
    store = SqliteChunkStore(data / STORE_FILENAME)
    store._db.execute("UPDATE store_settings SET value = 'old-model' WHERE key = 'embedder'")
    store.close()
    return data


def test_a_store_from_another_version_names_the_data_dir_to_reindex(tmp_path: Path) -> None:
    """`smallfirst rag reindex` alone fixed the config's data dir, maybe not this one."""
    data = needing_reindex(tmp_path)
    with pytest.raises(StoreNeedsReindex) as refused:
        open_store(data)
    assert refused.value.status == 400
    assert f"run `smallfirst rag reindex --data-dir {data}`" in refused.value.message


def test_a_store_that_cannot_be_used_leaves_no_open_file_behind(tmp_path: Path) -> None:
    """A model list polled every few seconds opened the store each time and kept it open."""
    data = damaged(tmp_path)
    gc.disable()  # a cycle collection would hide what was left open
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            with pytest.raises(StoreUnusable):
                open_store(data)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """The OS says `folder` cannot be written, as for a read-only volume. Tests run as root,
    whom permission bits do not stop, and mounting one needs privileges."""

    def make_read_only(folder: Path) -> None:
        access = os.access

        def no_writes(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
            if Path(path) == folder and mode & os.W_OK:
                return False
            return access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", no_writes)

    return make_read_only


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_in_a_read_only_folder_can_be_searched_but_not_changed(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    """Before: `OperationalError: unable to open database file` (from switching to WAL)."""
    data = ingested(tmp_path)
    before = digest(data / STORE_FILENAME)
    read_only(data)

    found = run("search", "vacation", "-c", "kb", "--method", "bm25", "--data-dir", str(data))
    assert found.exit_code == 0, found.output
    assert "doc0.md" in found.stdout
    assert "doc1.md" in found.stdout
    listed = run("collections", "--data-dir", str(data))
    assert listed.stdout == "kb\t2 documents\t2 chunks\n"

    deleted = run("delete", "kb", "--yes", "--data-dir", str(data))
    assert_one_error_line(deleted, 1, f"{data / STORE_FILENAME} is not writable")
    assert sorted(p.name for p in data.iterdir()) == [STORE_FILENAME]  # no -wal, no -shm
    assert digest(data / STORE_FILENAME) == before


def test_a_store_an_earlier_version_made_is_searched_in_a_read_only_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: Callable[[Path], None]
) -> None:
    """A store from before migration 0005 (file names, which only writes use) could not be
    migrated there: searching it failed with "not writable". Migrated when it can be."""
    data = ingested(tmp_path)
    older = SqliteChunkStore(data / STORE_FILENAME)
    older._db.execute("DROP INDEX documents_by_file_name")
    older._db.execute("ALTER TABLE documents DROP COLUMN file_name")
    older._db.execute("DELETE FROM _migrations WHERE name = '0005_document_file_name.sql'")
    older.close()
    before = digest(data / STORE_FILENAME)
    read_only(data)

    found = run("search", "vacation", "-c", "kb", "--method", "bm25", "--data-dir", str(data))
    assert found.exit_code == 0, found.output
    assert "doc0.md" in found.stdout
    assert digest(data / STORE_FILENAME) == before

    monkeypatch.undo()  # the volume is writable again
    upgraded = SqliteChunkStore(data / STORE_FILENAME)
    try:
        file_names = upgraded._db.execute("SELECT file_name FROM documents").fetchall()
    finally:
        upgraded.close()
    assert sorted(file_names) == [("doc0.md",), ("doc1.md",)]


@pytest.fixture
def disk_full_at_the_current_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's file may not grow: SQLite's own "database or disk is full" (SQLITE_FULL),
    as on a full disk, from a real file (a tmpfs of a fixed size needs root to mount)."""
    connect = SqliteChunkStore._connect

    def capped(store: SqliteChunkStore) -> Any:
        connection = connect(store)
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")
        return connection

    monkeypatch.setattr(SqliteChunkStore, "_connect", capped)


def test_ingest_on_a_full_disk_says_so_and_what_was_kept_then_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_full_at_the_current_size: None
) -> None:
    """Before: a traceback ending `OperationalError: database or disk is full`."""
    data = ingested(tmp_path, documents=2)
    docs = tmp_path / "docs"
    for number in range(2, 5):  # long enough to need new pages
        (docs / f"doc{number}.md").write_text(" ".join(f"word{n}" for n in range(3000)))
    ingest = ["ingest", str(docs), "-c", "kb", "--data-dir", str(data)]
    full = run(*ingest)
    assert_one_error_line(
        full,
        1,
        f"the disk holding {data / STORE_FILENAME} is full (database or disk is full): free some"
        " space and run the command again; what was ingested before is kept (0 files saved,"
        " 2 of 5 up to date), and a re-run skips unchanged files",
    )

    monkeypatch.undo()  # space was freed
    again = run(*ingest)
    assert again.exit_code == 0, again.output
    assert "3 added, 0 updated, 2 unchanged" in again.stdout


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_during_ingest_says_what_was_saved_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Before: exit 130 and not a word (SIGTERM: killed without a word)."""
    import smallfirst.rag.ingest as ingest_module

    docs = write_docs(tmp_path / "docs", 4)
    extract = ingest_module.extract

    def interrupted_at_the_third_file(path: Path, raw: bytes) -> Any:
        if path.name == "doc2.md":
            if stop == "sigterm":  # only with a handler: by default it would end pytest
                assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler raises within the sleep
            raise KeyboardInterrupt
        return extract(path, raw)

    monkeypatch.setattr(ingest_module, "extract", interrupted_at_the_third_file)
    ingest = ["ingest", str(docs), "-c", "kb", "--data-dir", str(tmp_path / "data")]
    stopped = run(*ingest)
    assert stopped.exit_code == 130
    assert stopped.stderr.strip() == (
        "interrupted: 2 files saved, 2 of 4 up to date; run the same command again to continue"
        " (unchanged files are skipped)"
    )

    monkeypatch.undo()
    again = run(*ingest)
    assert "2 added, 0 updated, 2 unchanged" in again.stdout


def test_a_store_path_that_is_a_folder_cannot_be_opened_and_says_which(tmp_path: Path) -> None:
    store = tmp_path / "data" / STORE_FILENAME
    store.mkdir(parents=True)
    docs = write_docs(tmp_path / "docs", 1)
    result = run("ingest", str(docs), "-c", "kb", "--data-dir", str(store.parent))
    assert_one_error_line(result, 1, f"cannot open {store} (unable to open database file)")


def test_an_ingest_waiting_too_long_for_another_writer_says_so_and_what_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a traceback ending `OperationalError: database is locked` after 5 s, for an
    ingest beside another process's long write (a `rag reindex` held the lock throughout)."""
    from smallfirst.rag import sqlite_file

    data = ingested(tmp_path, documents=2)
    docs = tmp_path / "docs"
    (docs / "doc2.md").write_text("# Doc 2\n\nParking policy.\n")
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT_MS", 0)  # the wait is not what is tested
    other_process = sqlite_file.connect(data / STORE_FILENAME)
    other_process.execute("BEGIN IMMEDIATE")
    try:
        busy = run("ingest", str(docs), "-c", "kb", "--data-dir", str(data))
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    assert_one_error_line(
        busy,
        1,
        f"{data / STORE_FILENAME} is being written by another process (database is locked,"
        " after waiting 0 s): run the command again once it is done; what was ingested before"
        " is kept (0 files saved, 2 of 3 up to date), and a re-run skips unchanged files",
    )


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (10 | 3 << 8, "cannot read or write /d/rag.sqlite (disk I/O error)"),  # SQLITE_IOERR_WRITE
        (3, "/d/rag.sqlite is not writable (disk I/O error)"),  # SQLITE_PERM
        (1, None),  # SQLITE_ERROR: a bug, left as it is
    ],
)
def test_errors_the_user_can_act_on_are_told_and_others_are_left_alone(
    code: int, said: str | None
) -> None:
    error = sqlite_module().OperationalError("disk I/O error")
    error.sqlite_errorcode = code
    told = unusable_store(Path("/d/rag.sqlite"), error)
    assert (told.message if told is not None else None) == said
