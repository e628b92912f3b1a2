"""RAG query latency at scale: p50/p95 per retrieval method over synthetic chunks (prints JSON).

Builds (once per user, cached in the temp dir, never in the repo) a store of N synthetic chunks:
Zipf-distributed made-up words for FTS5 and random unit vectors for the vector side. Queries
draw 3-8 words from the same distribution minus its 100 most frequent words (stand-ins for the
stopwords that analysis removes from real queries). Measured, never asserted.

`bm25`, `vector` and `hybrid` use precomputed random query vectors and the in-memory copies
(built first: `copies_build_ms`); `hybrid_from_sqlite` is what a search costs while those copies
are being rebuilt after a write (FTS5 and sqlite-vec answer it). With `--embed`, MiniLM
also embeds every query (never from a cache): `query_embedding_minilm` alone, then
`vector_with_minilm` and `hybrid_with_minilm`, which are what a real query costs. Methods timed
together take turns on every query, so that load on the machine hits them alike.

    .venv/bin/python -m benchmarks.rag_latency [--chunks 100000] [--queries 200] [--embed]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import built_once, cache_folder
from smallfirst.embed import EMBEDDER_ID
from smallfirst.percentiles import percentile
from smallfirst.rag.analysis import ANALYZER_NAME
from smallfirst.rag.chunking import Chunk
from smallfirst.rag.retrieve import Retriever
from smallfirst.rag.sqlite_store import SqliteChunkStore

VOCABULARY = 30_000
WORDS_PER_CHUNK = 120
CHUNKS_PER_DOCUMENT = 10
COLLECTION = "bench"


def made_up_words(rng: np.random.Generator, count: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(4, 11, size=count)
    return ["".join(rng.choice(letters, size=n)) + "q" for n in lengths]  # 'q' keeps stems whole


def zipf_weights(exponent: float = 1.07) -> np.ndarray:
    """Word frequencies of natural text: p(rank) proportional to rank^-1.07, finite vocabulary."""
    weights = np.arange(1, VOCABULARY + 1, dtype=np.float64) ** -exponent
    normalized: np.ndarray = weights / weights.sum()
    return normalized


def build(path: Path, chunks: int, rng: np.random.Generator, words: list[str]) -> None:
    ranks = rng.choice(VOCABULARY, size=chunks * WORDS_PER_CHUNK, p=zipf_weights())
    vectors = rng.standard_normal((chunks, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = SqliteChunkStore(path)
    try:
        for doc in range(chunks // CHUNKS_PER_DOCUMENT):
            batch = []
            for i in range(CHUNKS_PER_DOCUMENT):
                row = doc * CHUNKS_PER_DOCUMENT + i
                span = ranks[row * WORDS_PER_CHUNK : (row + 1) * WORDS_PER_CHUNK]
                text = " ".join(words[r] for r in span)
                batch.append(Chunk(text, f"Section {i}", 0, len(text), i))
            rows = slice(doc * CHUNKS_PER_DOCUMENT, (doc + 1) * CHUNKS_PER_DOCUMENT)
            store.put_document(
                COLLECTION,
                f"doc-{doc}",
                title="",
                content_hash="",
                chunks=batch,
                embeddings=vectors[rows],
            )
    finally:
        store.close()


def timed(stages: dict[str, Callable[[int], object]], count: int) -> dict[str, dict[str, float]]:
    """p50/p95 ms of each stage over queries 0..count-1. The stages take turns on each query,
    the one that goes first rotating, so that load on the machine hits all of them alike."""
    names = list(stages)
    for i in range(min(5, count)):  # warm caches (page cache, vector matrix, keyword index)
        for name in names:
            stages[name](i)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for i in range(count):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            stages[name](i)
            latencies[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {
            "p50_ms": round(percentile(values, 50), 2),
            "p95_ms": round(percentile(values, 95), 2),
        }
        for name, values in latencies.items()
    }


def embedded_timings(
    store: SqliteChunkStore, queries: list[str], k: int, n: int
) -> dict[str, dict[str, float]]:
    """What a real query costs: MiniLM embeds each query text (never cached here)."""
    from smallfirst.embed import get_embedder

    embedder = get_embedder()

    def embed_query(text: str) -> np.ndarray:
        vector: np.ndarray = embedder.embed([text], truncate=True)[0]
        return vector

    retriever = Retriever(store, embed_query)
    return timed(
        {
            "query_embedding_minilm": lambda i: embed_query(queries[i]),
            "vector_with_minilm": lambda i: retriever.search(
                queries[i], collection=COLLECTION, k=k, method="vector"
            ),
            "hybrid_with_minilm": lambda i: retriever.search(
                queries[i], collection=COLLECTION, k=k, method="hybrid"
            ),
        },
        n,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--embed", action="store_true", help="also time MiniLM query embedding")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    words = made_up_words(rng, VOCABULARY)
    # stores record their analyzer and embedder and refuse others: one cached store per pair
    layout = hashlib.sha1(f"{ANALYZER_NAME} {EMBEDDER_ID}".encode()).hexdigest()[:8]
    path = cache_folder("smallfirst-rag-bench") / f"rag-{layout}-{args.chunks}.sqlite"
    build_seconds = built_once(path, lambda partial: build(partial, args.chunks, rng, words))

    query_rng = np.random.default_rng(11)
    queries = []
    for _ in range(args.queries):
        ranks = query_rng.choice(VOCABULARY, size=40, p=zipf_weights())
        ranks = ranks[ranks >= 100][: query_rng.integers(3, 9)]
        queries.append(" ".join(words[r] for r in ranks) or words[500])
    query_vectors = query_rng.standard_normal((args.queries, 384)).astype(np.float32)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    vector_of = {q: query_vectors[i] for i, q in enumerate(queries)}

    store = SqliteChunkStore(path)
    plain = SqliteChunkStore(path, memory_vectors=False, memory_keyword_index=False)
    try:
        started = time.perf_counter()
        store.warm(COLLECTION)
        copies_ms = (time.perf_counter() - started) * 1000
        retriever = Retriever(store, lambda text: vector_of[text])
        from_sqlite = Retriever(plain, lambda text: vector_of[text])
        n, k = args.queries, args.k
        results: dict[str, object] = {
            "chunks": args.chunks,
            "queries": n,
            "k": k,
            "build_seconds": round(build_seconds, 1),
            "copies_build_ms": round(copies_ms, 1),
        }
        results |= timed(
            {
                "bm25": lambda i: retriever.search(
                    queries[i], collection=COLLECTION, k=k, method="bm25"
                ),
                "vector": lambda i: retriever.search(
                    queries[i], collection=COLLECTION, k=k, method="vector"
                ),
                "hybrid": lambda i: retriever.search(
                    queries[i], collection=COLLECTION, k=k, method="hybrid"
                ),
            },
            n,
        )
        results |= timed(
            {
                "vector_sqlite_vec_scan": lambda i: plain.vector_search(
                    COLLECTION, query_vectors[i], k
                ),
                "hybrid_from_sqlite": lambda i: from_sqlite.search(
                    queries[i], collection=COLLECTION, k=k, method="hybrid"
                ),
            },
            min(n, 30),
        )
        if args.embed:
            results.update(embedded_timings(store, queries, k, min(n, 100)))
    finally:
        store.close()
        plain.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
