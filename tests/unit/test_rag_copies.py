"""In-memory copies are built in the background; searches meanwhile are answered from SQLite."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smallfirst.rag.copies import Copies
from smallfirst.rag.sqlite_store import SqliteChunkStore
from tests.unit.test_rag_retrieve import ANIMALS, put_texts

WAIT = 30  # seconds; a bound on waiting for threads, never a measured duration


class GatedBuild:
    """A build that records its calls and runs only when the test lets it."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def __call__(self, collection_id: int) -> str:
        self.calls.append(collection_id)
        self.started.set()
        assert self.release.wait(WAIT)
        if self.fail:
            raise RuntimeError("disk on fire")
        return f"copy of {collection_id} #{len(self.calls)}"


class Stamps:
    """The store's write stamp, as the test moves it."""

    def __init__(self) -> None:
        self.now = (0, 0)

    def __call__(self) -> tuple[int, int]:
        return self.now


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(2)
    yield executor
    executor.shutdown(wait=True)


def test_a_missing_copy_is_built_once_in_the_background(pool: ThreadPoolExecutor) -> None:
    build = GatedBuild()
    copies = Copies("test copy", build, pool, Stamps())
    assert copies.get(1, (0, 0)) is None  # the caller goes to SQLite meanwhile
    assert build.started.wait(WAIT)
    assert copies.get(1, (0, 0)) is None  # still building: no second build
    build.release.set()
    assert copies.wait_for(1, (0, 0)) == "copy of 1 #1"  # joins the build under way
    assert copies.get(1, (0, 0)) == "copy of 1 #1"
    assert build.calls == [1]


def test_a_copy_serves_only_its_write_stamp(pool: ThreadPoolExecutor) -> None:
    build = GatedBuild()
    build.release.set()
    stamps = Stamps()
    copies = Copies("test copy", build, pool, stamps)
    assert copies.wait_for(1, (0, 0)) == "copy of 1 #1"
    stamps.now = (0, 1)
    assert copies.get(1, (0, 1)) is None  # a write since: rebuilt in the background
    assert copies.wait_for(1, (0, 1)) == "copy of 1 #2"
    copies.clear()
    assert copies.get(1, (0, 1)) is None


def test_a_build_overtaken_by_a_write_is_dropped(pool: ThreadPoolExecutor) -> None:
    build = GatedBuild()
    stamps = Stamps()
    copies = Copies("test copy", build, pool, stamps)
    assert copies.get(1, (0, 0)) is None
    assert build.started.wait(WAIT)
    stamps.now = (0, 1)  # a write while the build runs
    build.release.set()
    pool.shutdown(wait=True)  # the stale build has ended...
    assert copies._copies == {}  # ...and kept nothing
    assert copies.wait_for(1, (0, 1)) == "copy of 1 #2"
    assert build.calls == [1, 1]


def test_a_failed_background_build_is_logged_and_tried_again(
    pool: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    build = GatedBuild()
    build.fail = True
    build.release.set()
    copies = Copies("test copy", build, pool, Stamps())
    with caplog.at_level(logging.ERROR, logger="smallfirst.rag.copies"):
        assert copies.get(7, (0, 0)) is None
        pool.submit(lambda: None).result(WAIT)  # the pool has moved past the failed build
        pool.shutdown(wait=True)
    assert "building the in-memory test copy of RAG collection 7 failed" in caplog.text
    assert "next try in 5 s" in caplog.text
    with pytest.raises(RuntimeError, match="disk on fire"):
        copies.wait_for(7, (0, 0))  # a caller who waits gets the error itself
    build.fail = False
    assert copies.wait_for(7, (0, 0)) == "copy of 7 #3"


def test_after_a_failed_build_searches_wait_before_the_next_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("smallfirst.rag.copies.time.monotonic", lambda: clock[0])
    build = GatedBuild()
    build.fail = True
    build.release.set()
    one_builder = ThreadPoolExecutor(1)  # so a task submitted after a build runs after it
    copies = Copies("test copy", build, one_builder, Stamps())

    def search_then_settle() -> None:
        assert copies.get(7, (0, 0)) is None
        one_builder.submit(lambda: None).result(WAIT)

    search_then_settle()
    assert build.calls == [7]
    search_then_settle()  # within 5 s of the failure: SQLite answers, no build
    assert build.calls == [7]
    clock[0] += 5.1
    search_then_settle()  # the second try fails too: now 10 s
    assert build.calls == [7, 7]
    clock[0] += 9.0
    search_then_settle()
    assert build.calls == [7, 7]
    copies.clear()  # a write may have cured it: try at once
    build.fail = False
    search_then_settle()
    assert build.calls == [7, 7, 7]
    assert copies.get(7, (0, 0)) == "copy of 7 #3"
    one_builder.shutdown(wait=True)


def test_a_search_right_after_a_write_does_not_wait_for_the_rebuild(tmp_path: Path) -> None:
    store = SqliteChunkStore(tmp_path / "rag.sqlite")
    reference = SqliteChunkStore(tmp_path / "rag.sqlite", memory_keyword_index=False)
    build = GatedBuild()
    store._keyword_indexes._build = build  # held until released
    try:
        put_texts(store, "animals", ANIMALS)
        answers: list[object] = []
        search = threading.Thread(
            target=lambda: answers.append(store.keyword_search("animals", "cats chase", 10))
        )
        search.start()
        search.join(WAIT)
        assert not search.is_alive()  # answered while the build was still held
        assert build.started.is_set()
        assert answers == [reference.keyword_search("animals", "cats chase", 10)]  # by FTS5
        assert answers[0]
    finally:
        build.release.set()
        store.close()
        reference.close()
