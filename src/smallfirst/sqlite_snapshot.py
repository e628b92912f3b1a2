"""Reading a SQLite file of the data dir that other processes write to meanwhile."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """Every SELECT inside reads the file as it was at the first (an autocommit connection
    gives each statement its own snapshot, so queries that must add up could see different
    rows). `connection` must be in autocommit mode (`isolation_level=None`)."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")
