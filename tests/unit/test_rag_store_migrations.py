"""The RAG store's schema when several processes open one data dir (`serve`, two `rag
ingest`, a cron job): made once, and stores made by earlier versions keep working."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smallfirst.embed import EMBEDDER_ID
from smallfirst.rag import SqliteChunkStore
from smallfirst.rag import sqlite_store as store_module
from smallfirst.rag.analysis import ANALYZER_NAME
from smallfirst.rag.sqlite_file import connect
from tests.unit.test_rag_ingest import ingest, sources, write_docs

MIGRATIONS = Path(__file__).parents[2] / "src/smallfirst/rag/migrations"
ALL = [
    "0001_init.sql",
    "0002_drop_empty_collections.sql",
    "0003_document_shown_as.sql",
    "0004_name_documents_again.sql",
    "0005_document_file_name.sql",
]
Tracer = Callable[[str], None]


@pytest.fixture
def traced_by_thread(monkeypatch: pytest.MonkeyPatch) -> dict[str, Tracer]:
    """Thread name -> a trace callback for the store connections opened in that thread, so a
    test can pause one "process" at a chosen statement."""
    tracers: dict[str, Tracer] = {}

    def traced_connect(target: Path | str) -> Any:
        connection = connect(target)
        tracer = tracers.get(threading.current_thread().name)
        if tracer is not None:
            connection.set_trace_callback(tracer)
        return connection

    monkeypatch.setattr(store_module, "connect", traced_connect)
    return tracers


def open_in_thread(path: Path, name: str, errors: dict[str, BaseException]) -> threading.Thread:
    def open_and_close() -> None:
        try:
            SqliteChunkStore(path).close()
        except BaseException as error:  # handed to the test's thread
            errors[name] = error

    thread = threading.Thread(target=open_and_close, name=name)
    thread.start()
    return thread


def recorded(path: Path) -> list[tuple[str, Any]]:
    connection = connect(path)
    try:
        rows = connection.execute("SELECT name, applied_at FROM _migrations ORDER BY name")
        return [(name, applied_at) for name, applied_at in rows]
    finally:
        connection.close()


def test_two_processes_opening_a_new_store_together_make_its_schema_once(
    tmp_path: Path, traced_by_thread: dict[str, Tracer]
) -> None:
    """The second reads `_migrations` while the first has made the tables but not committed:
    it must wait for the lock and look again. It ran the migration a second time ("table
    collections already exists", a traceback from `rag ingest` or a 503 from `serve`)."""
    path = tmp_path / "rag.sqlite"
    first_recording, second_acting, second_read = (threading.Event() for _ in range(3))

    def pause_before_recording(statement: str) -> None:
        if "INTO _migrations" in statement and not first_recording.is_set():
            first_recording.set()
            assert second_acting.wait(timeout=30)

    def note_the_first_step_after_reading(statement: str) -> None:
        if second_read.is_set():
            second_acting.set()
        elif "FROM _migrations" in statement:
            second_read.set()

    traced_by_thread.update(first=pause_before_recording, second=note_the_first_step_after_reading)
    errors: dict[str, BaseException] = {}
    first = open_in_thread(path, "first", errors)
    assert first_recording.wait(timeout=30)
    second = open_in_thread(path, "second", errors)
    first.join(timeout=60)
    second.join(timeout=60)
    assert errors == {}
    assert [name for name, _ in recorded(path)] == ALL


def test_two_processes_opening_a_new_store_together_agree_on_its_settings(
    tmp_path: Path, traced_by_thread: dict[str, Tracer]
) -> None:
    """Both found no `store_settings` row and both inserted one: the later open failed on
    "UNIQUE constraint failed: store_settings.key"."""
    path = tmp_path / "rag.sqlite"
    first_writing, second_done = threading.Event(), threading.Event()

    def pause_before_recording_settings(statement: str) -> None:
        if "INTO store_settings" in statement and not first_writing.is_set():
            first_writing.set()
            assert second_done.wait(timeout=30)

    traced_by_thread["first"] = pause_before_recording_settings
    errors: dict[str, BaseException] = {}
    first = open_in_thread(path, "first", errors)
    assert first_writing.wait(timeout=30)
    open_in_thread(path, "second", errors).join(timeout=60)
    second_done.set()
    first.join(timeout=60)
    assert errors == {}
    connection = connect(path)
    settings = dict(connection.execute("SELECT key, value FROM store_settings").fetchall())
    connection.close()
    assert settings == {"analyzer": ANALYZER_NAME, "embedder": EMBEDDER_ID}


def store_as_shipped(path: Path, migrations: list[str]) -> None:
    """A store as the runner before the shared one left it: `_migrations` with TEXT
    `applied_at` and names with their `.sql`, each migration in an `executescript`."""
    connection = connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE _migrations (name TEXT PRIMARY KEY, "
        "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    for name in migrations:
        script = (MIGRATIONS / name).read_text()
        connection.executescript(
            f"BEGIN;\n{script}\nINSERT INTO _migrations(name) VALUES ('{name}');\nCOMMIT;"
        )
    connection.close()


@pytest.mark.parametrize("shipped", [ALL[:1], ALL])
def test_a_store_made_before_the_shared_runner_opens_and_keeps_its_records(
    tmp_path: Path, shipped: list[str]
) -> None:
    """Names keep their `.sql` and `applied_at` stays an ISO text: a record under another name
    would run 0001 again on an existing store ("table collections already exists")."""
    path = tmp_path / "rag.sqlite"
    store_as_shipped(path, shipped)
    before = recorded(path)
    store = SqliteChunkStore(path)
    try:
        write_docs(tmp_path / "docs")
        ingest(store, tmp_path / "docs")
        assert sources(store, "mailman") == [str(tmp_path / "docs" / "dogs.txt")]
    finally:
        store.close()
    after = recorded(path)
    assert after[: len(before)] == before
    assert [name for name, _ in after] == ALL
    assert all(isinstance(when, str) and when.endswith("Z") for _, when in after)
    SqliteChunkStore(path).close()
    assert recorded(path) == after


def test_opening_a_store_reads_its_migration_records_once(
    tmp_path: Path, traced_by_thread: dict[str, Tracer]
) -> None:
    """They were read twice on every open (and the migration files with them): once to see
    whether a read-only store could be opened, and again to apply them."""
    path = tmp_path / "rag.sqlite"
    SqliteChunkStore(path).close()
    statements: list[str] = []
    traced_by_thread[threading.current_thread().name] = statements.append
    SqliteChunkStore(path).close()
    assert sum("FROM _migrations" in statement for statement in statements) == 1
