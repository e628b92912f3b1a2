"""The RAG store's SQLite file: connections with sqlite-vec loaded (read-only in a folder
that cannot be written), and SQLite's errors on it told in one line naming the file, the
cause and what to do (a `StoreUnusable`), a write lock another process held too long
included. Errors that only a developer could act on (a bug) pass unchanged."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from smallfirst.errors import ModelUnavailable
from smallfirst.rag.store import StoreBusy, StoreFull, StoreUnusable

if TYPE_CHECKING:
    import sqlite3

# SQLite's primary result codes (https://sqlite.org/rescode.html); extended codes add detail
# in the bits above these.
SQLITE_PERM, SQLITE_BUSY, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 3, 5, 8, 10, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26
PRIMARY_CODE_MASK = 0xFF
# How long a write waits for another process's (`rag ingest` beside `rag delete`, a cron
# job): as long as the request log's writers wait, rather than fail after 5 s.
BUSY_TIMEOUT_MS = 30_000


def sqlite_module() -> ModuleType:
    """The stdlib sqlite3 if it can load extensions, else pysqlite3 (bundles its own SQLite)."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError as exc:
        raise ModelUnavailable(
            "this Python's sqlite3 cannot load extensions (sqlite-vec); "
            "install 'pysqlite3-binary' (part of smallfirst[rag])"
        ) from exc


def connect(target: Path | str) -> sqlite3.Connection:
    """An autocommit connection, usable from any thread, with sqlite-vec loaded; `target` is
    the file's path, or a `file:` URI (`read_only_uri`)."""
    try:
        import sqlite_vec
    except ImportError as exc:
        raise ModelUnavailable(
            "package 'sqlite-vec' is not installed; install smallfirst[rag]"
        ) from exc

    connection: sqlite3.Connection = sqlite_module().connect(
        str(target), check_same_thread=False, isolation_level=None, uri=isinstance(target, str)
    )
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)
    connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    return connection


def read_only_uri(path: Path) -> str | None:
    """How to open a store whose folder cannot be written (a read-only volume): read-only,
    since searching writes nothing and SQLite could not switch it to WAL there; None for a
    writable folder. Without a -wal file beside it no writer has it open, so it is opened as
    immutable: SQLite then needs no -shm file, which it could not make there."""
    folder = path.parent
    if not folder.is_dir() or os.access(folder, os.W_OK):
        return None
    being_written = path.with_name(f"{path.name}-wal").exists()
    return f"{path.absolute().as_uri()}?mode=ro" + ("" if being_written else "&immutable=1")


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Inside, SQLite's errors on the store at `path` that its user can act on are raised as a
    `StoreUnusable` saying what to do (from the stdlib's sqlite3 or pysqlite3 alike)."""
    try:
        yield
    except Exception as exc:
        unusable = unusable_store(path, exc)
        if unusable is None:
            raise
        raise unusable from exc


def unusable_store(path: Path, error: Exception) -> StoreUnusable | None:
    """What to tell about `error`, or None if it is not an SQLite error its user can act on."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    primary = code & PRIMARY_CODE_MASK
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreUnusable(
            f"{path} is damaged ({error}): move it aside, with its -wal and -shm files if any,"
            " and ingest the documents again"
        )
    if primary == SQLITE_FULL:
        return StoreFull(
            f"the disk holding {path} is full ({error}): free some space and run the command again"
        )
    if primary in (SQLITE_READONLY, SQLITE_PERM):
        return StoreUnusable(f"{path} is not writable ({error})")
    if primary == SQLITE_BUSY:
        return StoreBusy(
            f"{path} is being written by another process ({error}, after waiting"
            f" {BUSY_TIMEOUT_MS / 1000:g} s): run the command again once it is done"
        )
    if primary == SQLITE_CANTOPEN:
        return StoreUnusable(f"cannot open {path} ({error})")
    if primary == SQLITE_IOERR:
        return StoreUnusable(f"cannot read or write {path} ({error})")
    return None
