"""`ResponseStore`: stored responses in `<data dir>/responses.db` (WAL, named migrations in
`migrations/`, recorded as the request log records its own). Calls block on disk: the server
makes them in a thread. One connection, one call at a time (a lock): a call is one statement
on one row, so gateways sharing the data dir wait on SQLite's lock (busy timeout), not here.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic_core

from smallfirst.errors import SmallfirstError
from smallfirst.logs.store import LOG_MIGRATIONS, connect
from smallfirst.sqlite_migrations import apply_migrations

RESPONSES_FILE = "responses.db"  # in the data dir
MIGRATIONS_PACKAGE = "smallfirst.stored_responses.migrations"
PRUNE_INTERVAL_S = 3600.0
log = logging.getLogger("smallfirst.stored_responses")


class StoredResponsesUnavailable(SmallfirstError):
    """The file cannot be opened or written (damaged, not writable, its disk full): the server's
    log names it; a client is not told the path."""

    status = 503
    error_type = "api_error"
    code = "stored_responses_unavailable"


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]  # the Response object as it was returned
    input_items: list[dict[str, Any]]  # what it answered: the chain's items, then its own

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """The items a response that follows this one (`previous_response_id`) goes on from."""
        output: list[dict[str, Any]] = self.response["output"]
        return [*self.input_items, *output]


class ResponseStore:
    """Opened on first use: a gateway whose clients never store a response makes no file."""

    def __init__(self, path: Path, retention_s: float | None = None) -> None:
        self.path = path
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._next_prune = 0.0

    def put(
        self,
        response_id: str,
        api_key_id: str | None,
        input_items: list[dict[str, Any]],
        response: dict[str, Any],
    ) -> None:
        items = pydantic_core.to_json(input_items, inf_nan_mode="null").decode()
        body = pydantic_core.to_json(response, inf_nan_mode="null").decode()
        with self._lock:
            connection = self._opened()
            try:
                connection.execute(
                    "INSERT INTO responses"
                    " (id, api_key_id, created_at, input_items, response) VALUES (?, ?, ?, ?, ?)",
                    (response_id, api_key_id, time.time(), items, body),
                )
            except sqlite3.Error as error:
                raise self._unavailable("write to", error) from None
            self._prune_if_due(connection)

    def get(self, response_id: str, api_key_id: str | None) -> StoredResponse | None:
        """The response, if stored by the same API key (another key's is not found either)
        and not past its retention."""
        with self._lock:
            connection = self._opened()
            try:
                row = connection.execute(
                    "SELECT input_items, response FROM responses"
                    " WHERE id = ? AND api_key_id IS ? AND created_at >= ?",
                    (response_id, api_key_id, self._oldest_kept()),
                ).fetchone()
            except sqlite3.Error as error:
                raise self._unavailable("read", error) from None
        if row is None:
            return None
        return StoredResponse(response=json.loads(row[1]), input_items=json.loads(row[0]))

    def delete(self, response_id: str, api_key_id: str | None) -> bool:
        """Whether it was stored (by the same key) and is deleted now."""
        with self._lock:
            connection = self._opened()
            try:
                deleted = connection.execute(
                    "DELETE FROM responses WHERE id = ? AND api_key_id IS ? AND created_at >= ?",
                    (response_id, api_key_id, self._oldest_kept()),
                ).rowcount
            except sqlite3.Error as error:
                raise self._unavailable("write to", error) from None
        return deleted > 0

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _opened(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                _create_private(self.path)
                connection = connect(self.path)
            except (sqlite3.Error, OSError) as error:
                raise self._unavailable("open", error) from None
            try:
                apply_migrations(connection, MIGRATIONS_PACKAGE, LOG_MIGRATIONS)
            except sqlite3.Error as error:
                connection.close()
                raise self._unavailable("open", error) from None
            self._connection = connection
        return self._connection

    def _oldest_kept(self) -> float:
        """The creation time of the oldest response still kept (0: every one is)."""
        return 0.0 if self.retention_s is None else time.time() - self.retention_s

    def _prune_if_due(self, connection: sqlite3.Connection) -> None:
        if self.retention_s is None or time.monotonic() < self._next_prune:
            return
        try:
            connection.execute("DELETE FROM responses WHERE created_at < ?", (self._oldest_kept(),))
        except sqlite3.Error as error:  # the response is written; pruned again in a minute
            log.error("stored responses %s: pruning failed (%s)", self.path, error)
            self._next_prune = time.monotonic() + 60
        else:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL_S

    def _unavailable(self, doing: str, error: BaseException) -> StoredResponsesUnavailable:
        log.error("stored responses: cannot %s %s (%s)", doing, self.path, error)
        return StoredResponsesUnavailable(
            f"Stored responses are unavailable: the server could not {doing} its file"
            " (its log says why)."
        )


def _create_private(path: Path) -> None:
    """Make the file readable by this user only (whole conversations, personal data
    included; SQLite gives its -wal and -shm files the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
