"""Retrieval over a `ChunkStore`: BM25, vector, or hybrid (reciprocal rank fusion)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal, get_args

from smallfirst.errors import InvalidRequest
from smallfirst.rag.store import ChunkStore, ScoredChunk

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Method = Literal["bm25", "vector", "hybrid"]
METHODS: tuple[Method, ...] = get_args(Method)
RRF_K = 60  # the constant from Cormack et al. (2009); not tuned
CANDIDATES_PER_SIDE = 100  # how deep each side of a hybrid search looks before fusing
QUERY_CACHE_SIZE = 256  # recent query embeddings kept (384 floats each: ~0.4 MB in all)

QueryEmbedder = Callable[[str], "npt.NDArray[np.float32]"]


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. `char_start:char_end` is its span in the extracted source text."""

    chunk_id: int
    score: float
    text: str
    source: str
    title: str
    heading: str
    char_start: int
    char_end: int
    shown_as: str = ""  # as stored; see `name`

    @property
    def name(self) -> str:
        """What citations call the document (`rag.names`, unique in its collection), not the
        absolute `source`, which says how the server's disk is laid out."""
        return self.shown_as or PurePath(self.source).name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], *, k: int = RRF_K
) -> list[ScoredChunk]:
    """Fuse best-first id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return [ScoredChunk(item, score) for item, score in ordered]


def default_query_embedder(cache_size: int = QUERY_CACHE_SIZE) -> QueryEmbedder:
    """MiniLM from `smallfirst.embed`, loaded on first call; long queries are truncated.

    Recent queries are cached: a regenerated answer or a repeated question skips the model.
    """

    @lru_cache(maxsize=cache_size)
    def embed_query(text: str) -> npt.NDArray[np.float32]:
        from smallfirst.embed import get_embedder

        vector: npt.NDArray[np.float32] = get_embedder().embed([text], truncate=True)[0]
        vector.flags.writeable = False  # shared by every caller asking the same text
        return vector

    return embed_query


def has_words(query: str) -> bool:
    """Whether `query` has anything to search for: a letter or a digit. Without one ("",
    "???", a zero-width space) every chunk "matches" and the hits would be arbitrary."""
    return any(character.isalnum() for character in query)


class Retriever:
    """`search(query, collection=..., k=..., method=...) -> list[Hit]` over a store.

    A hybrid search embeds the query and searches vectors on a worker thread while BM25 runs
    on the caller's: onnxruntime, NumPy and SQLite all release the GIL, so the two overlap.
    The store and `embed_query` must therefore be safe to call from several threads.
    """

    def __init__(self, store: ChunkStore, embed_query: QueryEmbedder | None = None) -> None:
        self.store = store
        self._embed_query = embed_query or default_query_embedder()
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()

    def ranked(
        self, query: str, *, collection: str, depth: int, method: Method = "hybrid"
    ) -> list[ScoredChunk]:
        """Chunk ids and scores, best first, without fetching their text."""
        if method == "bm25":
            return self.store.keyword_search(collection, query, depth)
        if method == "vector":
            return self._vector_ranking(query, collection, depth)
        if method == "hybrid":
            return self._hybrid_ranking(query, collection, depth)
        raise InvalidRequest(f"unknown retrieval method {method!r}; use one of {METHODS}")

    def _vector_ranking(self, query: str, collection: str, depth: int) -> list[ScoredChunk]:
        return self.store.vector_search(collection, self._embed_query(query), depth)

    def _hybrid_ranking(self, query: str, collection: str, depth: int) -> list[ScoredChunk]:
        side = max(depth, CANDIDATES_PER_SIDE)
        vector_side = self._worker_pool().submit(self._vector_ranking, query, collection, side)
        try:
            keyword = self.store.keyword_search(collection, query, side)
        except BaseException:
            vector_side.cancel()
            raise
        vector = vector_side.result()
        fused = reciprocal_rank_fusion(
            [[c.chunk_id for c in keyword], [c.chunk_id for c in vector]]
        )
        return fused[:depth]

    def close(self) -> None:
        """Stop the hybrid search's worker threads (the store is closed by its owner)."""
        with self._workers_lock:
            if self._workers is not None:
                self._workers.shutdown(wait=True)
                self._workers = None

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._workers_lock:
            if self._workers is None:
                # one worker per concurrent hybrid search; beyond two they would only queue
                # for the same CPU cores
                self._workers = ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="smallfirst-retriever"
                )
            return self._workers

    def search(
        self, query: str, *, collection: str, k: int = 5, method: Method = "hybrid"
    ) -> list[Hit]:
        if k < 1:
            raise InvalidRequest("k must be at least 1", param="k")
        ranked = self.ranked(query, collection=collection, depth=k, method=method)
        stored = self.store.fetch_chunks([c.chunk_id for c in ranked])
        hits = []
        for scored in ranked:
            chunk = stored.get(scored.chunk_id)
            if chunk is not None:  # removed between the two reads: skip, never invent
                hits.append(
                    Hit(
                        chunk.chunk_id,
                        scored.score,
                        chunk.text,
                        chunk.source,
                        chunk.title,
                        chunk.heading,
                        chunk.char_start,
                        chunk.char_end,
                        chunk.shown_as,
                    )
                )
        return hits
