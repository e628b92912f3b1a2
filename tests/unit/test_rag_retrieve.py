from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import pytest

from smallfirst import embed
from smallfirst.rag import (
    Chunk,
    CollectionNotFound,
    Hit,
    Retriever,
    SqliteChunkStore,
    reciprocal_rank_fusion,
)
from smallfirst.rag import sqlite_store as store_module
from smallfirst.rag.analysis import analyze, fts5_or_expression, query_terms
from smallfirst.rag.retrieve import default_query_embedder
from smallfirst.rag.store import ChunkStore, ScoredChunk
from smallfirst.rag.vector_scan import binary_codes, prefiltered_candidates
from tests.unit.rag_fakes import fake_embed, fake_embed_query


def test_rrf_matches_a_hand_computed_case() -> None:
    # a: ranks 1 and 3 -> 1/61 + 1/63; b: ranks 2 and 1 -> 1/62 + 1/61; c: rank 3 only; d: rank 2
    fused = reciprocal_rank_fusion([[1, 2, 3], [2, 4, 1]], k=60)

    expected = {1: 1 / 61 + 1 / 63, 2: 1 / 62 + 1 / 61, 3: 1 / 63, 4: 1 / 62}
    assert [c.chunk_id for c in fused] == [2, 1, 4, 3]
    for scored in fused:
        assert scored.score == pytest.approx(expected[scored.chunk_id])


def test_rrf_breaks_ties_by_id_for_stable_output() -> None:
    assert [c.chunk_id for c in reciprocal_rank_fusion([[7], [5]])] == [5, 7]


def test_analysis_stems_and_drops_stopwords() -> None:
    assert analyze("The cells were Dividing rapidly") == ["cell", "divid", "rapid"]


def test_fts_expression_quotes_terms_so_operators_stay_words() -> None:
    assert fts5_or_expression(query_terms('NEAR "AND" or NOT')) == '"near"'
    assert fts5_or_expression(query_terms("the of and")) == ""


def put_texts(store: SqliteChunkStore, collection: str, texts: dict[str, str]) -> None:
    for source, text in texts.items():
        chunk = Chunk(text, "", 0, len(text), 0)
        store.put_document(
            collection,
            source,
            title="",
            content_hash=source,
            chunks=[chunk],
            embeddings=fake_embed([chunk.embedding_text]),
        )


ANIMALS = {
    "cats": "Cats purr and chase mice.",
    "dogs": "Dogs bark at the mailman and chase cats.",
    "birds": "Birds sing at dawn.",
    "fish": "Fish swim; cats watch fish.",
}


def test_keyword_search_stays_inside_its_collection(store: SqliteChunkStore) -> None:
    put_texts(store, "animals", ANIMALS)
    alone = [c.chunk_id for c in store.keyword_search("animals", "cats chase", 10)]
    put_texts(store, "more", {"lions": "Lions are big cats that chase zebras."})

    shared = store.keyword_search("animals", "cats chase", 10)
    other = store.keyword_search("more", "cats chase", 10)

    sources = store.fetch_chunks([c.chunk_id for c in shared + other])
    assert {sources[c.chunk_id].source for c in shared} == {"cats", "dogs", "fish"}
    assert [sources[c.chunk_id].source for c in other] == ["lions"]
    assert sorted(c.chunk_id for c in shared) == sorted(alone)


def test_hybrid_fuses_the_same_rankings_as_the_two_sides(store: SqliteChunkStore) -> None:
    put_texts(store, "animals", ANIMALS)
    retriever = Retriever(store, fake_embed_query)
    query = "which animals chase cats"

    keyword = retriever.ranked(query, collection="animals", depth=100, method="bm25")
    vector = retriever.ranked(query, collection="animals", depth=100, method="vector")
    expected = reciprocal_rank_fusion([[c.chunk_id for c in keyword], [c.chunk_id for c in vector]])

    assert retriever.ranked(query, collection="animals", depth=3, method="hybrid") == expected[:3]


def test_closing_a_retriever_stops_its_threads_and_it_still_searches_after(
    store: SqliteChunkStore,
) -> None:
    put_texts(store, "animals", ANIMALS)
    retriever = Retriever(store, fake_embed_query)
    before = set(threading.enumerate())
    first = retriever.ranked("cats", collection="animals", depth=3, method="hybrid")
    started = [t for t in threading.enumerate() if t not in before]
    assert any(t.name.startswith("smallfirst-retriever") for t in started)
    retriever.close()
    assert not any(t.is_alive() for t in started if t.name.startswith("smallfirst-retriever"))
    assert retriever.ranked("cats", collection="animals", depth=3, method="hybrid") == first
    retriever.close()


def test_hybrid_reports_an_unknown_collection(store: SqliteChunkStore) -> None:
    put_texts(store, "animals", ANIMALS)
    with pytest.raises(CollectionNotFound):
        Retriever(store, fake_embed_query).search("cats", collection="plants", method="hybrid")


def test_concurrent_searches_agree_with_sequential_ones(store: SqliteChunkStore) -> None:
    put_texts(store, "animals", ANIMALS)
    store.warm("animals")  # every search on the in-memory copies, none on SQLite's paths
    retriever = Retriever(store, fake_embed_query)
    queries = ["cats", "dogs bark", "fish swim", "birds sing at dawn", "chase mice"] * 8

    def run(query: str) -> list[Hit]:
        return retriever.search(query, collection="animals", k=3, method="hybrid")

    sequential = [run(q) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, queries))
    assert concurrent == sequential


def test_default_query_embedder_reuses_recent_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    class CountingEmbedder:
        def embed(self, texts: list[str], *, truncate: bool = False) -> npt.NDArray[np.float32]:
            calls.append(texts)
            return fake_embed(texts)

    monkeypatch.setattr(embed, "get_embedder", CountingEmbedder)
    embed_query = default_query_embedder(cache_size=2)

    first = embed_query("why do cats purr")
    again = embed_query("why do cats purr")
    embed_query("dogs")
    embed_query("birds")  # evicts the least recently used: the cats query
    embed_query("why do cats purr")

    assert np.array_equal(first, again)
    assert calls == [["why do cats purr"], ["dogs"], ["birds"], ["why do cats purr"]]
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # one cached vector is handed to every caller: nobody may change it


@pytest.mark.parametrize(
    "setting",
    [
        "PARALLEL_SCAN_ROWS",  # the exact scan split over two threads, even for 4 rows
        "BINARY_PREFILTER_ROWS",  # codes first; with every row a candidate, rescoring is exact
    ],
)
def test_in_memory_vector_search_matches_sqlite_vec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setattr(store_module, setting, 1)
    in_memory = SqliteChunkStore(tmp_path / "rag.sqlite")
    exact = SqliteChunkStore(tmp_path / "rag.sqlite", memory_vectors=False)
    try:
        put_texts(in_memory, "animals", ANIMALS)
        query = fake_embed_query("cats chase fish")
        fast = in_memory.vector_search("animals", query, 4)
        slow = exact.vector_search("animals", query, 4)
    finally:
        in_memory.close()
        exact.close()
    assert [c.chunk_id for c in fast] == [c.chunk_id for c in slow]
    assert np.allclose([c.score for c in fast], [c.score for c in slow], atol=1e-5)


def test_binary_candidates_keep_the_true_neighbours_of_clustered_vectors() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((50, 384)).astype(np.float32)
    rows = centres[rng.integers(0, 50, 4000)] + 0.5 * rng.standard_normal((4000, 384))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    codes = binary_codes(rows)
    assert codes.shape == (4000, 6)  # 384 sign bits in six 64-bit words
    hits = []
    for query in rows[:20] + 0.1 * rng.standard_normal((20, 384)).astype(np.float32):
        candidates = set(prefiltered_candidates(codes, query.astype(np.float32), 10).tolist())
        exact_top = np.argsort(-(rows @ query))[:10]
        hits.append(len(candidates & set(exact_top.tolist())) / 10)
    assert len(candidates) == 200  # 5% of the rows (more than 10 x limit)
    assert np.mean(hits) >= 0.95


def test_in_memory_vectors_see_writes_from_other_connections(tmp_path: Path) -> None:
    searcher = SqliteChunkStore(tmp_path / "rag.sqlite")
    writer = SqliteChunkStore(tmp_path / "rag.sqlite")
    try:
        put_texts(searcher, "docs", ANIMALS)
        query = fake_embed_query("a zebra drinks water")
        searcher.warm("docs")
        before = searcher.vector_search("docs", query, 50)
        put_texts(writer, "docs", {"zoo": "A zebra drinks water beside the giraffes."})
        searcher.warm("docs")  # a new matrix: the other connection's write changed the stamp
        after = searcher.vector_search("docs", query, 50)
        assert len(after) == len(before) + 1
        assert searcher.fetch_chunks([after[0].chunk_id])[after[0].chunk_id].source == "zoo"
        writer.remove_document("docs", "zoo")
        searcher.warm("docs")
        assert searcher.vector_search("docs", query, 50) == before
    finally:
        searcher.close()
        writer.close()


def test_rrf_puts_what_both_sides_rank_high_above_what_one_side_ranks_first() -> None:
    """The constant k=60 (Cormack et al.) flattens the top ranks: 2nd and 3rd on both sides
    beats 1st on one side only (with a small k one side's first would win)."""
    fused = reciprocal_rank_fusion([[1, 2, 3], [4, 3, 2]])
    assert [c.chunk_id for c in fused] == [2, 3, 1, 4]


class TwoSidedStore:
    """A store whose keyword and vector sides rank the ids given, cut at the depth asked."""

    def __init__(self, keyword: list[int], vector: list[int]) -> None:
        self.keyword, self.vector = keyword, vector

    def keyword_search(self, collection: str, query: str, limit: int) -> list[ScoredChunk]:
        return [ScoredChunk(chunk_id, 1.0) for chunk_id in self.keyword[:limit]]

    def vector_search(
        self, collection: str, embedding: npt.NDArray[np.float32], limit: int
    ) -> list[ScoredChunk]:
        return [ScoredChunk(chunk_id, 1.0) for chunk_id in self.vector[:limit]]


def test_a_shallow_hybrid_search_fuses_both_sides_ranked_deeper_than_asked() -> None:
    """One hit asked for: the chunk second on both sides beats either side's first, which
    it could not if each side were cut at one before fusing."""
    store = TwoSidedStore(keyword=[1, 3, 5], vector=[2, 3, 6])
    retriever = Retriever(cast(ChunkStore, store), fake_embed_query)
    try:
        assert [c.chunk_id for c in retriever.ranked("q", collection="c", depth=1)] == [3]
    finally:
        retriever.close()
