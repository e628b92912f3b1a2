"""Named schema migrations for the SQLite files in the data dir (the request log, the RAG
store): `NNNN_name.sql` files of a package, applied in name order, each recorded in the
file's `_migrations` table; a shipped migration is never edited (simonw/llm's rule).

Several processes share a data dir (`serve`, `stats`, two `rag ingest`, a cron job), so a
migration runs in one transaction with its record, taken with the write lock (`BEGIN
IMMEDIATE`) before `_migrations` is read again: processes that find the same migration
pending apply it once, the others waiting for the lock (the connection's busy timeout), and a
process killed half-way leaves the file as it was (SQLite's DDL is transactional;
`executescript`, which commits first, is not used).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

__all__ = ["MigrationsTable", "apply_migrations", "apply_pending", "pending_migrations"]


@dataclass(frozen=True)
class MigrationsTable:
    """How a file records its applied migrations. Each store keeps the form it shipped with,
    so data dirs made by earlier versions need no conversion."""

    create: str  # CREATE TABLE IF NOT EXISTS _migrations (...)
    record: str  # the INSERT of one applied migration; its one parameter is the name
    names_keep_suffix: bool  # recorded as "0001_init.sql", not "0001_init"


def apply_migrations(
    connection: sqlite3.Connection, package: str, table: MigrationsTable
) -> list[str]:
    """Apply the pending migrations of `package` in name order; returns the names recorded
    now. `connection` must be in autocommit mode (`isolation_level=None`)."""
    return apply_pending(connection, table, pending_migrations(connection, package, table))


def apply_pending(
    connection: sqlite3.Connection, table: MigrationsTable, pending: list[tuple[str, str]]
) -> list[str]:
    """Apply `pending` (as `pending_migrations` found them, for a caller that looked at them
    first); each is checked again under the write lock. Returns the names recorded now."""
    return [name for name, script in pending if _apply(connection, table, name, script)]


def pending_migrations(
    connection: sqlite3.Connection, package: str, table: MigrationsTable
) -> list[tuple[str, str]]:
    """The migrations of `package` not recorded in the file yet, in name order: (name, SQL)."""
    connection.execute(table.create)
    done = _applied(connection)
    migrations = _migrations(package, keep_suffix=table.names_keep_suffix)
    return [(name, script) for name, script in migrations if name not in done]


def _migrations(package: str, *, keep_suffix: bool) -> list[tuple[str, str]]:
    files = sorted(
        (f for f in resources.files(package).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [
        (f.name if keep_suffix else f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
        for f in files
    ]


def _applied(connection: sqlite3.Connection) -> set[str]:
    return {row[0] for row in connection.execute("SELECT name FROM _migrations")}


def _apply(connection: sqlite3.Connection, table: MigrationsTable, name: str, script: str) -> bool:
    """Run `script` and record `name` in one transaction; False if another process had
    recorded it first."""
    connection.execute("BEGIN IMMEDIATE")  # waits for a migrating process (busy timeout)
    with connection:  # commits, or rolls back on any error
        if name in _applied(connection):
            return False
        for statement in _statements(script):
            connection.execute(statement)
        connection.execute(table.record, (name,))
    return True


def _statements(script: str) -> Iterator[str]:
    """`script` one statement at a time, for the migration's transaction (`executescript`
    would commit that transaction first)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):  # not a ";" in a string or a comment
            yield statement
            statement = ""
