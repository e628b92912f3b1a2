"""In-memory copies of a store's search structures (a vector matrix, BM25 postings), one per
collection, each valid for the store's write stamp it was built at.

A search that finds no valid copy starts a build on a background thread and is answered from
SQLite meanwhile (FTS5, sqlite-vec): at 100k chunks a build takes seconds, while a search on
disk takes ~10-100 ms, so the first search after a write, or after start-up, no longer waits
seconds for it. `wait_for` builds in the caller's thread (or joins a running build) for
callers that need the copy now: benchmarks, evaluation runs, tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
Stamp = tuple[int, int]
# After a background build fails, searches keep to SQLite for a while before the next try
# (doubling from 5 s to 5 min), so a persistent fault does not cost a build per search.
RETRY_FIRST_S, RETRY_MAX_S = 5.0, 300.0


class Copies(Generic[T]):
    """One kind of copy (`name`) for every collection, built by `build(collection_id)`.
    `current_stamp()` is the store's write stamp now: a build that a write overtook is
    dropped, not kept (at 100k chunks a copy holds a few hundred MB)."""

    def __init__(
        self,
        name: str,
        build: Callable[[int], T],
        builders: Executor,
        current_stamp: Callable[[], Stamp],
    ) -> None:
        self.name = name
        self._build = build
        self._builders = builders
        self._current_stamp = current_stamp
        self._lock = threading.Lock()
        self._copies: dict[int, tuple[T, Stamp]] = {}
        self._building: dict[int, threading.Event] = {}  # set when that build has ended
        self._failed: dict[int, tuple[int, float]] = {}  # failures in a row, next try (monotonic)

    def get(self, collection_id: int, stamp: Stamp) -> T | None:
        """The copy valid at `stamp`, or None after starting its build in the background
        (unless the last background build failed recently: then None alone)."""
        with self._lock:
            copy = self._valid(collection_id, stamp)
            if copy is not None or collection_id in self._building:
                return copy
            _, retry_at = self._failed.get(collection_id, (0, 0.0))
            if time.monotonic() < retry_at:
                return None
            done = self._building[collection_id] = threading.Event()
        self._builders.submit(self._run_build, collection_id, stamp, done, raise_errors=False)
        return None

    def wait_for(self, collection_id: int, stamp: Stamp) -> T:
        """The copy valid at `stamp`, built now if need be (joining a build under way)."""
        while True:
            with self._lock:
                copy = self._valid(collection_id, stamp)
                if copy is not None:
                    return copy
                running = self._building.get(collection_id)
                if running is None:
                    done = self._building[collection_id] = threading.Event()
            if running is None:
                return self._run_build(collection_id, stamp, done, raise_errors=True)
            running.wait()  # then look again: that build may be for an older stamp

    def clear(self) -> None:
        """Drop every copy (a write happened; it may also have cured a failing build). A build
        under way is dropped when it ends."""
        with self._lock:
            self._copies.clear()
            self._failed.clear()

    def _valid(self, collection_id: int, stamp: Stamp) -> T | None:
        cached = self._copies.get(collection_id)
        return cached[0] if cached is not None and cached[1] == stamp else None

    def _run_build(
        self, collection_id: int, stamp: Stamp, done: threading.Event, *, raise_errors: bool
    ) -> T:
        try:
            built = self._build(collection_id)
            still_current = self._current_stamp() == stamp  # outside our lock: it may take the
            with self._lock:  # store's, and searches hold the store's lock while calling `get`
                self._failed.pop(collection_id, None)
                if still_current:
                    self._copies[collection_id] = (built, stamp)
            return built
        except Exception:
            if not raise_errors:  # nobody waits for this build: say it failed, try later
                with self._lock:
                    failures = self._failed.get(collection_id, (0, 0.0))[0] + 1
                    delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))
                    self._failed[collection_id] = (failures, time.monotonic() + delay)
                logger.exception(
                    "building the in-memory %s of RAG collection %d failed; searches use SQLite"
                    " (next try in %.0f s)",
                    self.name,
                    collection_id,
                    delay,
                )
            raise
        finally:
            with self._lock:
                del self._building[collection_id]
            done.set()
