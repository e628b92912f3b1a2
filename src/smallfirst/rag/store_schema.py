"""A chunk store's schema upkeep on open: named migrations, the analyzer and embedder that
made its terms and vectors (refused when they are not this version's), and the columns that
migrations 0004 and 0005 left to fill (documents' names and file names). Also the write
transaction every change of the store runs in.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from smallfirst.embed import EMBEDDER_ID
from smallfirst.rag import migrations
from smallfirst.rag.analysis import ANALYZER_NAME
from smallfirst.rag.names import file_name, name_again
from smallfirst.rag.store import StoreNeedsReindex
from smallfirst.sqlite_migrations import apply_pending, pending_migrations

if TYPE_CHECKING:
    import sqlite3

# What made a store's terms and vectors, recorded in `store_settings` and checked on open.
CURRENT_SETTINGS = (("analyzer", ANALYZER_NAME), ("embedder", EMBEDDER_ID))
LEGACY_EMBEDDER = "all-minilm-l6-v2 (float32 compute)"  # vectors of stores without the setting


class Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or a rollback when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite ends it itself after some errors (a full disk)
            self._db.execute("ROLLBACK")


def set_up_schema(
    db: sqlite3.Connection, path: Path, *, writable: bool, refuse_other_settings: bool
) -> None:
    """Migrate the store at `path` (open as `db`) and check what made it; see the module."""
    pending = pending_migrations(db, migrations.__name__, migrations.RECORDED_AS)
    if writable or not {name for name, _ in pending} <= migrations.FOR_WRITES_ONLY:
        apply_pending(db, migrations.RECORDED_AS, pending)  # read-only: refused
    _check_settings(db, path, refuse_other_settings)
    if writable:
        _fill_file_names(db)
        _name_unnamed_documents(db)


def _fill_file_names(db: sqlite3.Connection) -> None:
    """`documents.file_name` of the documents stored before migration 0005 added it."""

    def fill(rows: list[Any]) -> None:
        filled = [(file_name(source), document_id) for document_id, source in rows]
        db.executemany("UPDATE documents SET file_name = ? WHERE id = ?", filled)

    _mend_once(db, "SELECT id, source FROM documents WHERE file_name = ''", fill)


def _name_unnamed_documents(db: sqlite3.Connection) -> None:
    """Name the documents stored before names were unique in their collection (migration
    0004 emptied their `shown_as`), by the first process that can write the store; a
    read-only one shows their file names."""

    def name(rows: list[Any]) -> None:
        for (collection_id,) in rows:
            name_again(db, collection_id)

    _mend_once(db, "SELECT DISTINCT collection_id FROM documents WHERE shown_as = ''", name)


def _mend_once(db: sqlite3.Connection, left: str, mend: Callable[[list[Any]], None]) -> None:
    """`mend` the rows the query `left` finds, if any, in a write transaction that reads
    them again: another process opening the store may have mended them meanwhile."""
    if db.execute(left).fetchone() is None:
        return
    with Transaction(db):
        mend(db.execute(left).fetchall())


def _check_settings(db: sqlite3.Connection, path: Path, refuse_other_settings: bool) -> None:
    """Refuse a store whose terms or vectors were made by another analyzer or embedder."""
    has_chunks = db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None
    for key, expected in CURRENT_SETTINGS:
        row = _setting(db, key)
        if row is None and has_chunks and key == "embedder":
            row = (LEGACY_EMBEDDER,)  # stores from before the setting existed
        if row is None:
            # another process opening the new store may have recorded its own meanwhile
            db.execute(
                "INSERT OR IGNORE INTO store_settings(key, value) VALUES (?, ?)", (key, expected)
            )
            row = _setting(db, key)
        if row is not None and row[0] != expected and refuse_other_settings:
            folder = shlex.quote(str(path.parent.absolute()))
            raise StoreNeedsReindex(
                f"{path} was indexed with {key} {row[0]!r}, this version uses "
                f"{expected!r}; run `smallfirst rag reindex --data-dir {folder}` to "
                "re-analyse and re-embed its chunks in place"
            )


def _setting(db: sqlite3.Connection, key: str) -> tuple[str] | None:
    row = db.execute("SELECT value FROM store_settings WHERE key = ?", (key,))
    return cast("tuple[str] | None", row.fetchone())
