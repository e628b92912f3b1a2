"""A running gateway and the `rag` commands of other processes on one data dir: what the
server answers from is the store at its place, also after that file was made anew."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from starlette.testclient import TestClient

from smallfirst.completions import ModelInfo
from smallfirst.config import RagConfig
from smallfirst.rag import Retriever, SqliteChunkStore
from smallfirst.rag.chunking import embedding_text
from smallfirst.rag_step import RagStep
from smallfirst.types import ChatRequest
from tests.helpers import chat_body, fake_client, fake_settings
from tests.unit.rag_fakes import count_words, fake_embed, fake_embed_query
from tests.unit.test_rag_ingest import ingest


def ingest_into(data: Path, collection: str, name: str, text: str) -> None:
    """What `smallfirst rag ingest` in another process does: one file into `collection`."""
    folder = data.parent / collection
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    data.mkdir(exist_ok=True)
    store = SqliteChunkStore(data / "rag.sqlite")
    try:
        ingest(store, folder, collection=collection)
    finally:
        store.close()


def move_the_store_aside(data: Path) -> None:
    """As the message for a damaged store says: the file with its -wal and -shm."""
    aside = data.parent / "aside"
    aside.mkdir()
    for file in data.glob("rag.sqlite*"):
        file.rename(aside / file.name)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    ingest_into(folder, "kb", "kettle.md", "# Kettle\n\nThe kettle is descaled on Fridays.\n")
    return folder


def rag_models(client: TestClient) -> list[str]:
    listed = client.get("/v1/models").json()["data"]
    return [m["id"] for m in listed if m["id"].startswith("rag/")]


def ask(client: TestClient, collection: str, question: str) -> Any:
    messages = [{"role": "user", "content": question}]
    return client.post(
        "/v1/chat/completions", json=chat_body(f"rag/{collection}", messages=messages)
    )


def test_a_store_moved_aside_and_ingested_anew_is_served_without_a_restart(data: Path) -> None:
    """The server went on reading the moved file: the new collection was a 404 and the old
    one was still listed and answered, until a restart."""
    client, _ = fake_client(fake_settings(data, rag={"method": "bm25"}))
    with client:
        assert rag_models(client) == ["rag/kb"]
        assert ask(client, "kb", "When is the kettle descaled?").status_code == 200
        move_the_store_aside(data)
        ingest_into(data, "fresh", "parking.md", "# Parking\n\nVisitors park on level two.\n")
        assert rag_models(client) == ["rag/fresh"]
        answer = ask(client, "fresh", "Where do visitors park?")
        assert answer.status_code == 200, answer.text
        [cited] = {Path(c["source"]).name for c in answer.json()["smallfirst"]["citations"]}
        assert cited == "parking.md"
        assert ask(client, "kb", "When is the kettle descaled?").status_code == 404


def test_a_store_whose_file_was_replaced_reads_only_the_file_it_opened(data: Path) -> None:
    """Its connection kept the moved file while new read connections opened the new one: a
    search for `kb` then answered with the chunks of another collection of the new file
    (its keyword copy was built there under kb's id), a private one included."""
    store = SqliteChunkStore(data / "rag.sqlite")
    try:
        assert [c.name for c in store.collections()] == ["kb"]
        move_the_store_aside(data)
        ingest_into(data, "private-hr", "pay.md", "# Pay\n\nAnna earns 91,000; kettle budget.\n")
        retriever = Retriever(store, fake_embed_query)
        for method in ("bm25", "vector", "hybrid", "bm25"):
            store.warm("kb")  # the copies as a later search would find them
            hits = retriever.search("kettle", collection="kb", method=method)
            assert [Path(hit.source).name for hit in hits] == ["kettle.md"], method
        retriever.close()
    finally:
        store.close()


@pytest.fixture
def held_search(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, ...]]:
    """Searches for "held ..." wait in their thread until the test lets them go."""
    entered, release = threading.Event(), threading.Event()
    search = Retriever.search

    def held(self: Retriever, query: str, **options: Any) -> Any:
        if query.startswith("held"):
            entered.set()
            assert release.wait(timeout=30)
        return search(self, query, **options)

    monkeypatch.setattr(Retriever, "search", held)
    yield entered, release
    release.set()


def test_a_search_under_way_when_the_store_is_replaced_ends_on_the_store_it_began_on(
    data: Path, held_search: tuple[threading.Event, ...]
) -> None:
    """The old store is closed only once its last search has ended."""
    entered, release = held_search
    step = RagStep(RagConfig(method="bm25"), data)
    model = ModelInfo(id="tiny", tier="edge", backend="fake", context_length=4096)
    request = ChatRequest(model="rag/kb", messages=[{"role": "user", "content": "held kettle"}])

    async def replace_the_store_during_a_search() -> tuple[Any, list[str]]:
        grounding = asyncio.create_task(step.ground(request, "kb", model, count_words))
        assert await asyncio.to_thread(entered.wait, 30)
        move_the_store_aside(data)
        ingest_into(data, "fresh", "parking.md", "# Parking\n\nVisitors park on level two.\n")
        listed = await step.collections()
        release.set()
        return await grounding, listed

    try:
        grounded, listed = asyncio.run(replace_the_store_during_a_search())
    finally:
        step.close()
    assert listed == ["fresh"]
    assert [Path(c["source"]).name for c in grounded.citations] == ["kettle.md"]


def test_an_ingest_while_reindex_embeds_is_written_at_once_and_reindexed_too(data: Path) -> None:
    """`rag reindex` held the write lock while it re-embedded every chunk (14 s for 600
    chunks here): an ingest in another process failed on "database is locked". The ingest
    here may not wait at all, and its chunk gets the reindex's vector like the others."""
    reindexing = SqliteChunkStore(data / "rag.sqlite")
    other_process = SqliteChunkStore(data / "rag.sqlite")
    other_process._db.execute("PRAGMA busy_timeout=0")
    ingested_meanwhile: list[dict[str, int]] = []

    def flipped_after_an_ingest(texts: list[str]) -> npt.NDArray[np.float32]:
        if not ingested_meanwhile:
            (data.parent / "kb" / "mugs.md").write_text("# Mugs\n\nMugs go in the dishwasher.\n")
            ingested_meanwhile.append(ingest(other_process, data.parent / "kb", collection="kb"))
        return -fake_embed(texts)

    try:
        assert reindexing.reindex(flipped_after_an_ingest) == 2
        [counts] = ingested_meanwhile
        assert (counts["added"], counts["skipped"]) == (1, 1)
        stored = reindexing._db.execute(
            "SELECT c.heading, c.text, v.embedding FROM chunks c"
            " JOIN chunk_vectors v ON v.chunk_id = c.id ORDER BY c.id"
        ).fetchall()
    finally:
        other_process.close()
        reindexing.close()
    assert len(stored) == 2
    for heading, text, blob in stored:
        wanted = -fake_embed([embedding_text(heading, text)])[0]
        assert np.allclose(np.frombuffer(blob, dtype=np.float32), wanted, atol=1e-6), text


def test_two_ingests_of_a_folder_emptied_meanwhile_both_end_well(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cron job and the user ingest a folder whose files were all deleted: the one that
    removed the last document deleted the collection, and the other stopped with "RAG
    collection 'kb' does not exist" (exit 2; 2 of 2 runs of a QA script)."""
    for number in range(3):
        ingest_into(data, "kb", f"note{number}.md", f"# Note {number}\n\nParking rules.\n")
    for file in (data.parent / "kb").iterdir():
        file.unlink()
    first = SqliteChunkStore(data / "rag.sqlite")
    second = SqliteChunkStore(data / "rag.sqlite")
    read_by_second = second.document_hashes

    def read_then_the_first_ingests(collection: str) -> dict[str, str]:
        known = read_by_second(collection)
        if known:  # the first ingest runs between the second's read and its removals
            ingest(first, data.parent / "kb", collection="kb")
        return known

    monkeypatch.setattr(second, "document_hashes", read_then_the_first_ingests)
    try:
        counts = ingest(second, data.parent / "kb", collection="kb")
        assert (counts["removed"], first.collections()) == (4, [])
    finally:
        first.close()
        second.close()


def test_a_rag_request_with_no_store_in_the_data_dir_makes_none(tmp_path: Path) -> None:
    """It made an empty store: before any ingest (racing the first `rag ingest` to make
    it), or right after the user moved the store aside to put another in its place."""
    client, _ = fake_client(fake_settings(tmp_path, rag={"method": "bm25"}))
    with client:
        answer = ask(client, "notes", "Where do visitors park?")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "model_not_found")
    assert "'notes' does not exist" in answer.json()["error"]["message"]
    assert not list(tmp_path.glob("rag.sqlite*"))


def test_an_ingest_beside_a_serving_gateway_leaves_no_wal_behind(tmp_path: Path) -> None:
    """SQLite keeps the -wal file at the largest size it reached while another connection has
    the store open: an ingest of 2,000 chunks beside a serving gateway left a 5.6 MB
    rag.sqlite-wal next to a 7 MB store until the gateway stopped."""
    data = tmp_path / "data"
    ingest_into(data, "kb", "kettle.md", "# Kettle\n\nThe kettle is descaled on Fridays.\n")
    serving = SqliteChunkStore(data / "rag.sqlite")
    try:
        assert [c.name for c in serving.collections()] == ["kb"]
        for number in range(20):
            ingest_into(data, "notes", f"{number}.md", f"# Note {number}\n\n" + "words " * 400)
        assert [c.name for c in serving.collections()] == ["kb", "notes"]
        assert (data / "rag.sqlite-wal").stat().st_size == 0
    finally:
        serving.close()


def test_a_store_another_process_is_writing_is_opened_and_searched_at_once(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server opening the store while a long `rag ingest` holds its write lock lists and
    answers its collections without waiting: opening a store this version made writes nothing
    (WAL is set, the migrations are applied), and under WAL readers do not wait for a writer.
    With no wait allowed here, a write on the way would be a 503 "being written" at once."""
    from smallfirst.rag import sqlite_file

    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT_MS", 0)
    other_process = sqlite_file.connect(data / "rag.sqlite")
    other_process.execute("BEGIN IMMEDIATE")
    other_process.execute("INSERT INTO collections(name) VALUES ('being-ingested')")
    try:
        client, _ = fake_client(fake_settings(data, rag={"method": "bm25"}))
        with client:
            listed = rag_models(client)
            answer = ask(client, "kb", "When is the kettle descaled?")
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    assert listed == ["rag/kb"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["smallfirst"]["citations"][0]["source"] == "kettle.md"
