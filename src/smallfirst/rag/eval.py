"""Retrieval evaluation on a BEIR-style collection (corpus.jsonl, queries.jsonl, qrels.tsv).

Protocol and metrics match shared/data/rag/bm25_baseline.py: document = title + text, nDCG@10
with graded gains (trec_eval formula and tie order), Recall@100, over queries with at least
one relevant document. Added here: MRR (reciprocal rank of the first relevant document in the
top 100) and per-query latency. Long documents are chunked; a document scores the maximum
over its chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.embed import EMBEDDER_ID
from smallfirst.errors import InvalidRequest
from smallfirst.rag.chunking import Chunk, chunk_text
from smallfirst.rag.ingest import TextEmbedder
from smallfirst.rag.retrieve import Method, QueryEmbedder, Retriever
from smallfirst.rag.sqlite_store import SqliteChunkStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EVAL_COLLECTION = "eval"
DOC_DEPTH = 100
CHUNK_DEPTH = 300  # chunks fetched per query so that ~100 distinct documents remain
EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "smallfirst-rag-embeddings"

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class BeirCollection:
    corpus: list[dict[str, str]]
    queries: list[dict[str, str]]
    qrels: Qrels


def load_beir(corpus: Path, queries: Path, qrels: Path) -> BeirCollection:
    for path in (corpus, queries, qrels):
        if not path.is_file():
            raise InvalidRequest(f"file not found: {path}")
    docs = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    asked = [json.loads(line) for line in queries.read_text(encoding="utf-8").splitlines() if line]
    judged: Qrels = {}
    lines = qrels.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["query-id", "corpus-id", "score"]:
        raise InvalidRequest(f"{qrels}: the header must be 'query-id<TAB>corpus-id<TAB>score'")
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InvalidRequest(f"{qrels}:{number}: expected 3 tab-separated fields")
        judged.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    return BeirCollection(docs, [q for q in asked if q["id"] in judged], judged)


# -- metrics (same definitions as bm25_baseline.py) -------------------------------------


def trec_order(scores: dict[str, float]) -> list[str]:
    """trec_eval's order: score descending, ties broken by document id descending."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    ndcg: list[float] = []
    recall: list[float] = []
    reciprocal: list[float] = []
    for query_id, judgments in qrels.items():
        relevant = {d: g for d, g in judgments.items() if g > 0}
        if not relevant:
            continue
        ranking = trec_order(run.get(query_id, {}))
        dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        ndcg.append(dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal)))
        recall.append(sum(1 for d in ranking[:DOC_DEPTH] if d in relevant) / len(relevant))
        first = next((i for i, d in enumerate(ranking[:DOC_DEPTH]) if d in relevant), None)
        reciprocal.append(0.0 if first is None else 1.0 / (first + 1))
    count = max(len(ndcg), 1)
    return {
        "ndcg@10": sum(ndcg) / count,
        "recall@100": sum(recall) / count,
        "mrr": sum(reciprocal) / count,
        "n_queries": float(len(ndcg)),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (numpy's default), `fraction` in [0, 1]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- indexing and running ---------------------------------------------------------------


def chunk_corpus(
    corpus: Sequence[dict[str, str]], count_tokens: Callable[[str], int], max_tokens: int
) -> list[tuple[str, list[Chunk]]]:
    chunked = []
    for doc in corpus:
        title, text = (doc.get("title") or "").strip(), doc.get("text") or ""
        # an eval document is split only when it does not fit the embedder
        chunks = chunk_text(
            text,
            count_tokens=count_tokens,
            max_tokens=max_tokens,
            target_tokens=max_tokens,
            title=title,
        )
        if not chunks and title:  # a title-only document is still findable by its title
            chunks = chunk_text(title, count_tokens=count_tokens, max_tokens=max_tokens)
        chunked.append((str(doc["id"]), chunks))
    return chunked


def embed_cached(
    texts: list[str], embed_texts: TextEmbedder, model_id: str
) -> npt.NDArray[np.float32]:
    """Embeddings of `texts`, cached under the temp dir by content (never in the repo)."""
    import numpy as np

    key = hashlib.sha256(("\0".join([model_id, *texts])).encode()).hexdigest()[:32]
    cached = EMBEDDING_CACHE / f"{key}.npy"
    if cached.is_file():
        loaded: npt.NDArray[np.float32] = np.load(cached)
        return loaded
    vectors = np.asarray(embed_texts(texts), dtype=np.float32)
    EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors


def build_index(
    store: SqliteChunkStore,
    chunked: Sequence[tuple[str, list[Chunk]]],
    vectors: npt.NDArray[np.float32],
) -> None:
    offset = 0
    for doc_id, chunks in chunked:
        store.put_document(
            EVAL_COLLECTION,
            doc_id,
            title="",
            content_hash="",
            chunks=chunks,
            embeddings=vectors[offset : offset + len(chunks)],
        )
        offset += len(chunks)


def run_method(
    retriever: Retriever, collection: BeirCollection, method: Method
) -> tuple[Run, list[float]]:
    """Document rankings (max over chunks) per query and each query's latency in ms."""
    run: Run = {}
    latencies: list[float] = []
    source_of: dict[int, str] = {}
    for query in collection.queries:
        started = time.perf_counter()
        ranked = retriever.ranked(
            query["text"], collection=EVAL_COLLECTION, depth=CHUNK_DEPTH, method=method
        )
        latencies.append((time.perf_counter() - started) * 1000)
        missing = [c.chunk_id for c in ranked if c.chunk_id not in source_of]
        source_of.update({i: c.source for i, c in retriever.store.fetch_chunks(missing).items()})
        doc_scores: dict[str, float] = {}
        for scored in ranked:
            doc_id = source_of[scored.chunk_id]
            doc_scores[doc_id] = max(doc_scores.get(doc_id, -math.inf), scored.score)
        top = trec_order(doc_scores)[:DOC_DEPTH]
        run[query["id"]] = {d: doc_scores[d] for d in top}
    return run, latencies


def evaluate_collection(
    collection: BeirCollection,
    methods: Sequence[Method],
    *,
    embed_texts: TextEmbedder | None = None,
    embed_query: QueryEmbedder | None = None,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 256,
    model_id: str = EMBEDDER_ID,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """{method: {"ndcg@10", "recall@100", "mrr", "p50_ms", "p95_ms", "n_queries"}}."""
    if embed_texts is None or count_tokens is None:
        from smallfirst.embed import LocalEmbedder

        # a batch job: both cores for the corpus; queries keep the 1-thread serving embedder
        corpus_embedder = LocalEmbedder(threads=2)
        embed_texts = embed_texts or corpus_embedder.embed
        count_tokens = count_tokens or corpus_embedder.count_tokens
    chunked = chunk_corpus(collection.corpus, count_tokens, max_tokens)
    texts = [c.embedding_text for _, chunks in chunked for c in chunks]
    if progress:
        progress(f"embedding {len(texts)} chunks of {len(chunked)} documents")
    vectors = embed_cached(texts, embed_texts, model_id)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="smallfirst-rag-eval-") as folder:
        store = SqliteChunkStore(Path(folder) / "rag.sqlite")
        try:
            build_index(store, chunked, vectors)
            store.warm(EVAL_COLLECTION)  # latencies are of searches, not of building copies
            for method in methods:
                if progress:
                    progress(f"running {len(collection.queries)} queries with {method}")
                # a retriever per method: no query embedding cached by one method's run
                # may shorten the next one's latencies
                run, latencies = run_method(Retriever(store, embed_query), collection, method)
                metrics = evaluate_run(run, collection.qrels)
                metrics["p50_ms"] = percentile(latencies, 0.50)
                metrics["p95_ms"] = percentile(latencies, 0.95)
                results[method] = metrics
        finally:
            store.close()
    return results
