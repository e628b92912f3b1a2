"""`ResponseStore`: stored responses in `<data dir>/responses.db` (WAL, named migrations in
`migrations/`, recorded as the request log records its own). Calls block on disk: the server
makes them in a thread. One connection, one call at a time (a lock): each statement is
atomic on its own, so gateways sharing the data dir wait on SQLite's lock (busy timeout), not
here.

A response is stored with its own input items and the id of the one it goes on from, not a
copy of the chain before it (a 100-turn chain of 2 KB turns took 12 MB copied, 0.5 MB linked).
A deleted response that later ones go on from is kept, marked deleted and holding only its
output (what they read of it), until none does; so is an expired one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import closing
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
    # the private RAG collection it or a response before it was grounded in: the answers
    # quote its documents, so a response going on from it stays on local tiers too
    private_collection: str | None = None

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """The items a response that follows this one (`previous_response_id`) goes on from."""
        output: list[dict[str, Any]] = self.response["output"]
        return [*self.input_items, *output]


# The response asked for (depth 0, if stored by that key and not deleted or expired), then
# each one it goes on from: their input items and output, oldest first.
CHAIN = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT id, 0 FROM responses
    WHERE id = ? AND api_key_id IS ? AND deleted = 0 AND created_at >= ?
    UNION ALL
    SELECT responses.previous_id, chain.depth + 1 FROM responses JOIN chain USING (id)
    WHERE responses.previous_id IS NOT NULL
)
SELECT responses.input_items,
       CASE chain.depth WHEN 0 THEN responses.response
       ELSE json_extract(responses.response, '$.output') END,
       responses.private_collection
FROM chain JOIN responses USING (id) ORDER BY chain.depth DESC
"""
# Every response still kept, and each one those go on from; the others are deleted.
PRUNE = """
WITH RECURSIVE needed(id) AS (
    SELECT id FROM responses WHERE deleted = 0 AND created_at >= ?
    UNION
    SELECT responses.previous_id FROM responses JOIN needed USING (id)
    WHERE responses.previous_id IS NOT NULL
)
DELETE FROM responses WHERE id NOT IN needed
"""


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
        own_items: list[dict[str, Any]],
        response: dict[str, Any],
        previous: StoredResponse | None = None,
        private_collection: str | None = None,
    ) -> None:
        """Store `response`, which answered `own_items` after the conversation of `previous`
        (stored as `response["previous_response_id"]`), grounded in `private_collection` or
        going on from one that was (`previous.private_collection`)."""
        body = pydantic_core.to_json(response, inf_nan_mode="null").decode()
        previous_id = response["previous_response_id"] if previous is not None else None
        if private_collection is None and previous is not None:
            private_collection = previous.private_collection
        with self._lock:
            connection = self._opened()
            try:
                linked = previous_id is not None and self._insert(
                    connection,
                    (response_id, api_key_id, own_items, body, previous_id, private_collection),
                )
                if not linked:  # first of its chain, or the one before was deleted meanwhile
                    chain = previous.conversation if previous is not None else []
                    items = [*chain, *own_items]
                    row = (response_id, api_key_id, items, body, None, private_collection)
                    self._insert(connection, row)
            except sqlite3.Error as error:
                raise self._unavailable("write to", error) from None
            self._prune_if_due(connection)

    def get(self, response_id: str, api_key_id: str | None) -> StoredResponse | None:
        """The response, if stored by the same API key (another key's is not found either)
        and neither deleted nor past its retention."""
        with self._lock:
            connection = self._opened()
            try:
                rows = connection.execute(
                    CHAIN, (response_id, api_key_id, self._oldest_kept())
                ).fetchall()
            except sqlite3.Error as error:
                raise self._unavailable("read", error) from None
        if not rows:
            return None
        *earlier, (own_items, response, private_collection) = rows
        items = []
        for input_items, output, _ in earlier:
            items += [*json.loads(input_items), *json.loads(output)]
        return StoredResponse(
            response=json.loads(response),
            input_items=items + json.loads(own_items),
            private_collection=private_collection,
        )

    def delete(self, response_id: str, api_key_id: str | None) -> bool:
        """Whether it was stored (by the same key) and is deleted now."""
        with self._lock:
            connection = self._opened()
            try:
                deleted = connection.execute(
                    "UPDATE responses SET deleted = 1,"
                    " response = json_object('output', json_extract(response, '$.output'))"
                    " WHERE id = ? AND api_key_id IS ? AND deleted = 0 AND created_at >= ?",
                    (response_id, api_key_id, self._oldest_kept()),
                ).rowcount
                if deleted:
                    self._drop_unneeded(connection, response_id)
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
                self._connection = _migrated(self.path)
            except (sqlite3.Error, OSError) as error:
                raise self._unavailable("open", error) from None
        return self._connection

    def _oldest_kept(self) -> float:
        """The creation time of the oldest response still kept (0: every one is)."""
        return 0.0 if self.retention_s is None else time.time() - self.retention_s

    def _insert(
        self,
        connection: sqlite3.Connection,
        row: tuple[str, str | None, Any, str, str | None, str | None],
    ) -> bool:
        """Insert the row; one that goes on from another only while that one is stored
        (checked in the same statement: a gateway sharing the file may delete it)."""
        response_id, api_key_id, items, body, previous_id, private_collection = row
        inserted = connection.execute(
            "INSERT INTO responses (id, api_key_id, created_at, input_items, response,"
            " previous_id, private_collection)"
            " SELECT ?, ?, ?, ?, ?, ?, ?"
            " WHERE ?6 IS NULL OR EXISTS (SELECT 1 FROM responses WHERE id = ?6)",
            (
                response_id,
                api_key_id,
                time.time(),
                pydantic_core.to_json(items, inf_nan_mode="null").decode(),
                body,
                previous_id,
                private_collection,
            ),
        ).rowcount
        return inserted > 0

    def _drop_unneeded(self, connection: sqlite3.Connection, response_id: str | None) -> None:
        """Delete the response if it is deleted or expired and none goes on from it, then
        the one it went on from, if that one is now unneeded too, and so on up its chain."""
        while response_id is not None:
            dropped = connection.execute(
                "DELETE FROM responses WHERE id = ? AND (deleted = 1 OR created_at < ?)"
                " AND NOT EXISTS (SELECT 1 FROM responses AS later WHERE later.previous_id = ?1)"
                " RETURNING previous_id",
                (response_id, self._oldest_kept()),
            ).fetchone()
            response_id = dropped[0] if dropped is not None else None

    def _prune_if_due(self, connection: sqlite3.Connection) -> None:
        if self.retention_s is None or time.monotonic() < self._next_prune:
            return
        try:
            connection.execute(PRUNE, (self._oldest_kept(),))
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


def open_problem(path: Path) -> str | None:
    """Why the stored responses at `path` cannot be used, for `serve` to say at start (the
    gateway found out at the first Responses request, and logged it again at each); None if
    they can, or there are none yet. An older file is brought up to date."""
    if not path.exists():
        return None
    try:
        with closing(_migrated(path)) as connection:
            connection.execute("SELECT count(*) FROM responses").fetchone()
    except (sqlite3.Error, OSError) as error:
        return (
            f"{path} cannot be used for stored responses ({error}): move it aside to start"
            " a new one, or set server.store_responses: false"
        )
    return None


def _migrated(path: Path) -> sqlite3.Connection:
    """A connection to the file at `path`, brought up to date (closed if that fails)."""
    connection = connect(path)
    try:
        apply_migrations(connection, MIGRATIONS_PACKAGE, LOG_MIGRATIONS)
    except BaseException:
        connection.close()
        raise
    return connection
