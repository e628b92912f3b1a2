"""Retrieval evaluation on a BEIR-style collection (corpus.jsonl, queries.jsonl, qrels.tsv).

Protocol and metrics match shared/data/rag/bm25_baseline.py: document = title + text, nDCG@10
with graded gains (trec_eval formula and tie order), Recall@100, over the judged queries that
have a text and at least one relevant document; a judged document missing from the corpus
counts as missed, as in BEIR (`load_beir` warns of mismatches, and refuses input where nothing
could be found). Added here: MRR (reciprocal rank of the first
relevant document in the top 100) and per-query latency. Long documents are chunked; a
document scores the maximum over its chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smallfirst.embed import DIMENSIONS, EMBEDDER_ID, MAX_TOKENS
from smallfirst.errors import InvalidRequest, json_kind
from smallfirst.paths import cache_dir, replaced_in_one_step
from smallfirst.percentiles import percentile
from smallfirst.rag.chunking import Chunk, chunk_text
from smallfirst.rag.ingest import TextEmbedder
from smallfirst.rag.retrieve import Method, Retriever
from smallfirst.rag.sqlite_store import SqliteChunkStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EVAL_COLLECTION = "eval"
DOC_DEPTH = 100
CHUNK_DEPTH = 300  # chunks fetched per query so that ~100 distinct documents remain
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

SHOWN_IDS = 3  # ids named per warning: enough to find the mismatch, short enough to read


# -- reading the three files and matching them ------------------------------------------


@dataclass(frozen=True)
class BeirCollection:
    """The documents, the queries that can be scored and their judgments; `warnings` name
    the judgments left out because the three files do not match."""

    corpus: list[dict[str, str]]
    queries: list[dict[str, str]]
    qrels: Qrels
    warnings: tuple[str, ...] = ()


def load_beir(corpus: Path, queries: Path, qrels: Path) -> BeirCollection:
    """Read a BEIR collection and keep the queries that can be scored: judged in `qrels`
    with a relevant (score >= 1) document, and with a text in `queries`. Queries
    without judgments are skipped as BEIR does (queries.jsonl often holds every split); a
    judgment that does not match the other files is left out with a warning, and an
    InvalidRequest is raised when nothing is left or a file cannot be parsed."""
    replaced: list[str] = []  # ids used twice in a file
    docs = read_corpus(corpus, replaced)
    texts = read_queries(queries, replaced)
    judged = read_qrels(qrels)
    kept, left_out = match_judgments(judged, texts, {d["id"] for d in docs}, corpus, queries)
    if not kept:
        reasons = left_out or [f"no query in {qrels} has a relevant document (score >= 1)"]
        raise InvalidRequest("nothing to evaluate: " + "; ".join(reasons))
    asked = [{"id": query_id, "text": texts[query_id]} for query_id in kept]
    return BeirCollection(docs, asked, kept, tuple(replaced + left_out))


def read_corpus(path: Path, warnings: list[str]) -> list[dict[str, str]]:
    docs = [
        {"id": doc_id, "title": _text(row, "title", where), "text": _text(row, "text", where)}
        for doc_id, row, where in _rows_with_ids(path, warnings)
    ]
    if not docs:
        raise InvalidRequest(f"the corpus {path} holds no documents")
    return docs


def read_queries(path: Path, warnings: list[str]) -> dict[str, str]:
    """Query id -> text ("" when the row has none)."""
    texts = {
        query_id: _text(row, "text", where)
        for query_id, row, where in _rows_with_ids(path, warnings)
    }
    if not texts:
        raise InvalidRequest(f"the queries file {path} holds no queries")
    return texts


def read_qrels(path: Path) -> Qrels:
    lines = _read_lines(path)
    if not lines or lines[0].split("\t") != ["query-id", "corpus-id", "score"]:
        raise InvalidRequest(f"{path}: the header must be 'query-id<TAB>corpus-id<TAB>score'")
    judged: Qrels = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise InvalidRequest(f"{path}:{number}: expected 3 tab-separated fields")
        query_id, doc_id, score = fields
        try:
            grade = float(score)
        except ValueError:
            grade = math.nan
        if not grade.is_integer():
            raise InvalidRequest(f"{path}:{number}: the score {score!r} is not a whole number")
        judged.setdefault(query_id, {})[doc_id] = int(grade)  # "1" or "1.0"
    if not judged:
        raise InvalidRequest(f"the qrels file {path} holds no judgments")
    return judged


def match_judgments(
    judged: Qrels, texts: dict[str, str], doc_ids: set[str], corpus: Path, queries: Path
) -> tuple[Qrels, list[str]]:
    """The judgments of the queries that can be scored, and one line per kind left out."""
    unknown_docs = [d for judgments in judged.values() for d in judgments if d not in doc_ids]
    not_asked = [q for q in judged if q not in texts]
    no_text = [q for q in judged if q in texts and not texts[q].strip()]
    asked = {q: j for q, j in judged.items() if texts.get(q, "").strip()}
    # a query judged only with score 0 is skipped by the protocol, not lost by a mismatch
    kept = {q: j for q, j in asked.items() if _has_relevant(j)}
    if not any(d in doc_ids for judgments in kept.values() for d in judgments):
        kept = {}  # nothing any method could find: the files do not belong together
    left_out = [
        # as BEIR scores them: a judged document no method can return counts as missed
        _left_out(
            f"qrels rows whose document is not in {corpus}", unknown_docs, "scored as missed"
        ),
        _left_out(f"judged queries missing from {queries}", not_asked),
        _left_out(f"judged queries without text in {queries}", no_text),
    ]
    return kept, [line for line in left_out if line]


def _has_relevant(judgments: dict[str, int]) -> bool:
    return any(gain > 0 for gain in judgments.values())


def _left_out(what: str, ids: Sequence[str], fate: str = "left out") -> str:
    """'what: N left out (a, b, c, ...)', or "" when there are none."""
    if not ids:
        return ""
    distinct = list(dict.fromkeys(ids))
    named = ", ".join(distinct[:SHOWN_IDS]) + (", ..." if len(distinct) > SHOWN_IDS else "")
    return f"{what}: {len(ids)} {fate} ({named})"


def _read_lines(path: Path) -> list[str]:
    if path.is_dir():
        raise InvalidRequest(f"{path} is a directory, not a file")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # a BOM: Windows tools
    except FileNotFoundError:
        raise InvalidRequest(f"file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from None


def _rows_with_ids(path: Path, warnings: list[str]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(id, row, "file:line") per JSON line. An id used again replaces the earlier row, as
    it always did here, with a line in `warnings` (published corpora have such rows)."""
    rows: dict[str, tuple[dict[str, Any], str]] = {}
    again: list[str] = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        row = _json_object(line, where)
        row_id = _row_id(row, where)
        if row_id in rows:
            again.append(row_id)
        rows[row_id] = (row, where)
    if again:
        warnings.append(_left_out(f"ids used again in {path}", again, "replaced"))
    for row_id, (row, where) in rows.items():
        yield row_id, row, where


def _json_object(line: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, not {json_kind(row)}")
    return row


def _row_id(row: dict[str, Any], where: str) -> str:
    """BEIR's "_id", or "id" as shared/data/rag writes it; numbers are read as text."""
    value = row.get("_id", row.get("id"))
    if value is None:
        raise InvalidRequest(f'{where}: the row has no "_id" or "id"')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"{where}: the id must be a string, not {json_kind(value)}")
    return str(value)


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f'{where}: "{key}" must be a string, not {json_kind(value)}')
    return value


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


def embedding_cache() -> Path:
    """Where `embed_cached` keeps the vectors: the user's cache, as for the models. It was a
    folder of a fixed name in the shared temp dir, made with the umask's mode (0755, files
    0644): any user of the machine could read the vectors of a corpus, which tell much of
    its text, or make the folder first and so own what was read from it."""
    return cache_dir() / "rag-eval-embeddings"


def embed_cached(
    texts: list[str], embed_texts: TextEmbedder, model_id: str
) -> npt.NDArray[np.float32]:
    """Embeddings of `texts`, cached by content in `embedding_cache()` (this user's only)."""
    import numpy as np

    key = hashlib.sha256(("\0".join([model_id, *texts])).encode()).hexdigest()[:32]
    cached = embedding_cache() / f"{key}.npy"
    if cached.is_file():
        loaded: npt.NDArray[np.float32] = np.load(cached)
        return loaded
    vectors = np.asarray(embed_texts(texts), dtype=np.float32)
    # in one step: a run stopped while it saved left a file cut short, which every later
    # evaluation of that corpus failed to load
    with replaced_in_one_step(cached, private=True) as aside:
        np.save(aside, vectors)
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
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """{method: {"ndcg@10", "recall@100", "mrr", "p50_ms", "p95_ms", "n_queries"}}."""
    if not collection.corpus:  # an index without documents has no collection to search
        raise InvalidRequest("the corpus holds no documents")
    import numpy as np

    from smallfirst.embed import LocalEmbedder

    # a batch job: both cores for the corpus; queries keep the 1-thread serving embedder
    corpus_embedder = LocalEmbedder(threads=2)
    chunked = chunk_corpus(collection.corpus, corpus_embedder.count_tokens, MAX_TOKENS)
    texts = [c.embedding_text for _, chunks in chunked for c in chunks]
    if any(method != "bm25" for method in methods):
        if progress:
            progress(f"embedding {len(texts)} chunks of {len(chunked)} documents")
        vectors = embed_cached(texts, corpus_embedder.embed, EMBEDDER_ID)
    else:  # BM25 alone reads no vector: embedding a big corpus took minutes for nothing
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
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
                run, latencies = run_method(Retriever(store), collection, method)
                metrics = evaluate_run(run, collection.qrels)
                metrics["p50_ms"] = percentile(latencies, 50)
                metrics["p95_ms"] = percentile(latencies, 95)
                results[method] = metrics
        finally:
            store.close()
    return results
