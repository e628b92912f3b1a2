"""The in-memory BM25 index (rag/keyword_index.py) against FTS5's own `bm25()`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smallfirst.rag import CollectionNotFound, ScoredChunk, SqliteChunkStore
from smallfirst.rag import sqlite_store as store_module
from smallfirst.rag.keyword_index import fts5_tokenizer
from tests.unit.test_rag_ingest import ingest
from tests.unit.test_rag_retrieve import ANIMALS, put_texts

DOCS = {
    "solar.md": (
        "# Solar panels\n\n## Installation\n\nMount the panels facing south, tilted close to "
        "your latitude. A roof installation needs a structural check before the panels go up."
        "\n\n## Maintenance\n\nClean the panels twice a year: dust and pollen reduce their "
        "output. Inspect the wiring after storms.\n\n# Batteries\n\n## Storage capacity\n\n"
        "A home battery keeps surplus solar energy for the evening. Capacity is measured in "
        "kilowatt hours.\n"
    ),
    "garden.md": (
        "# Composting\n\nKitchen scraps and garden waste become compost in about three months. "
        "Turn the pile every week so that air reaches the middle.\n\n# Watering\n\nWater the "
        "garden early in the morning, when less water evaporates. A naïve schedule wastes "
        "water: check the soil before watering.\n"
    ),
    "config.md": (
        "# Configuration\n\nSet the keyword_search limits in the config file; the snake_case "
        "names mirror the Python API.\n"
    ),
}

QUERIES = [
    "panels panels installation",  # a repeated word
    "storage",  # only in a heading
    "compost garden water",
    "naive watering",  # the text says "naïve": FTS5 drops the diacritic
    "snake",  # FTS5 splits "snake_case" into two tokens
    "keyword_search",  # a phrase of two FTS5 tokens: answered by FTS5 itself
    "solar",  # in half the chunks: idf clamped to 1e-6, ranked by length alone
    "zebra",  # not in the collection
    "the of and",  # only stopwords
    "c1 compost",  # "c1" is this collection's token: it must match no chunk on either path
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def paired(tmp_path: Path, docs: Path) -> Iterator[tuple[SqliteChunkStore, SqliteChunkStore]]:
    """The same file opened twice: searched in memory, and by FTS5's bm25()."""
    in_memory = SqliteChunkStore(tmp_path / "rag.sqlite")
    fts5 = SqliteChunkStore(tmp_path / "rag.sqlite", memory_keyword_index=False)
    ingest(in_memory, docs)
    in_memory.warm("docs")  # built now, not in the background on the first search
    yield in_memory, fts5
    in_memory.close()
    fts5.close()


def assert_same_ranking(ranked: list[ScoredChunk], expected: list[ScoredChunk]) -> None:
    assert [c.chunk_id for c in ranked] == [c.chunk_id for c in expected]
    assert [c.score for c in ranked] == pytest.approx([c.score for c in expected], rel=1e-5)


@pytest.mark.parametrize("limit", [2, 10])
@pytest.mark.parametrize("query", QUERIES)
def test_in_memory_bm25_ranks_and_scores_as_fts5(
    paired: tuple[SqliteChunkStore, SqliteChunkStore], query: str, limit: int
) -> None:
    in_memory, fts5 = paired
    assert_same_ranking(
        in_memory.keyword_search("docs", query, limit), fts5.keyword_search("docs", query, limit)
    )


def test_the_edge_queries_are_what_they_say(
    paired: tuple[SqliteChunkStore, SqliteChunkStore],
) -> None:
    in_memory, _ = paired
    assert in_memory.keyword_search("docs", "zebra", 10) == []
    assert in_memory.keyword_search("docs", "the of and", 10) == []
    [storage] = in_memory.keyword_search("docs", "storage", 10)
    chunk = in_memory.fetch_chunks([storage.chunk_id])[storage.chunk_id]
    assert "Storage" in chunk.heading
    assert "storage" not in chunk.text.lower()


def test_fts5_tokenizer_splits_and_folds_as_the_store_does() -> None:
    tokenize = fts5_tokenizer(store_module._memory_database)
    assert tokenize(["keyword_search", "naïv", "___", "cat"]) == [
        ("keyword", "search"),
        ("naiv",),
        (),
        ("cat",),
    ]


def test_search_sees_writes_from_this_store_and_from_other_connections(
    paired: tuple[SqliteChunkStore, SqliteChunkStore],
) -> None:
    in_memory, other = paired

    def ranked(query: str) -> list[ScoredChunk]:
        in_memory.warm("docs")  # the copy for the current write stamp
        expected = other.keyword_search("docs", query, 10)
        found = in_memory.keyword_search("docs", query, 10)
        assert_same_ranking(found, expected)  # statistics rebuilt too, not only postings
        return found

    assert ranked("zebra water") != []  # index built
    put_texts(in_memory, "docs", {"zoo": "A zebra drinks water beside the giraffes."})
    [zebra, *_] = ranked("zebra water")
    assert in_memory.fetch_chunks([zebra.chunk_id])[zebra.chunk_id].source == "zoo"

    other.remove_document("docs", "zoo")  # another connection: PRAGMA data_version changes
    assert ranked("zebra") == []
    ranked("zebra water")


def test_collections_keep_their_own_chunks_and_statistics(tmp_path: Path) -> None:
    shared = SqliteChunkStore(tmp_path / "shared.sqlite")
    alone = SqliteChunkStore(tmp_path / "alone.sqlite", memory_keyword_index=False)
    try:
        put_texts(shared, "animals", ANIMALS)
        put_texts(shared, "more", {"lions": "Lions are big cats that chase zebras."})
        put_texts(alone, "animals", ANIMALS)  # same chunk ids as in `shared`
        shared.warm("animals")
        shared.warm("more")

        ranked = shared.keyword_search("animals", "cats chase lions", 10)
        sources = shared.fetch_chunks([c.chunk_id for c in ranked])
        assert {sources[c.chunk_id].source for c in ranked} == {"cats", "dogs", "fish"}
        # statistics of the collection alone: FTS5's scores on a store holding only it
        assert_same_ranking(ranked, alone.keyword_search("animals", "cats chase lions", 10))
        assert [c.chunk_id for c in shared.keyword_search("more", "cats", 10)] == [5]
        with pytest.raises(CollectionNotFound):
            shared.keyword_search("plants", "cats", 10)
    finally:
        shared.close()
        alone.close()
