"""Chunk storage: the small `ChunkStore` ABC that retrieval talks to, and `open_store`.

The SQLite implementation (FTS5 + sqlite-vec) is `rag/sqlite_store.py`; a PostgreSQL +
pgvector store can be added later without touching retrieval.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.errors import InvalidRequest, ModelNotFound, SmallfirstError
from smallfirst.paths import create_private_dir
from smallfirst.rag.chunking import Chunk

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from smallfirst.rag.sqlite_store import SqliteChunkStore

STORE_FILENAME = "rag.sqlite"
EMBEDDING_DIMENSIONS = 384


class CollectionNotFound(ModelNotFound):
    """Asked for a collection that was never ingested (a 404 for `model: "rag/<name>"`)."""

    @classmethod
    def without_text(cls, collection: str) -> CollectionNotFound:
        """A collection whose documents hold no text: it can only answer ungrounded."""
        return cls(
            f"RAG collection {collection!r} has no text to search: its documents are empty"
            " (or PDFs of scanned pages, which need OCR first)"
        )


class StoreNeedsReindex(InvalidRequest):
    """The store's terms or vectors were made by another analyzer or embedder: searching it
    would compare unlike things until `smallfirst rag reindex` re-makes them."""

    code = "rag_reindex_needed"


class StoreUnusable(SmallfirstError):
    """The store's file cannot be used as it is: damaged, not writable, its disk full. The
    message names the file and what to do; `rag/<collection>` requests get it as a 503."""

    status = 503
    error_type = "api_error"
    code = "rag_store_unusable"


class StoreFull(StoreUnusable):
    """The disk holding the store is full: what was written before is kept."""


class StoreBusy(StoreUnusable):
    """Another process held the store's write lock longer than we waited for it (an ingest
    or delete of another process, or one writing more than usual): what was written before is
    kept."""


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: int
    score: float


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: int
    document_id: int
    source: str
    title: str
    heading: str
    text: str
    char_start: int
    char_end: int
    shown_as: str = ""  # what citations call the document (`rag.names`)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int


class ChunkStore(ABC):
    """What retrieval and ingestion need from storage; one implementation per database."""

    @abstractmethod
    def document_hashes(self, collection: str) -> dict[str, str]:
        """source -> content hash of every document in `collection` (empty if none)."""

    @abstractmethod
    def put_document(
        self,
        collection: str,
        source: str,
        *,
        title: str,
        content_hash: str,
        chunks: Sequence[Chunk],
        embeddings: npt.NDArray[np.float32],
    ) -> dict[str, str]:
        """Add or replace the document `source` (creating the collection if needed), named
        for citations (`StoredChunk.shown_as`) by `rag.names.cited_names` of the collection's
        sources, in the same transaction. Returns the other documents whose name changed
        with it (a namesake's name grows) -> their name now."""

    @abstractmethod
    def remove_document(self, collection: str, source: str) -> dict[str, str]:
        """Remove `source` and its chunks; removing the last one deletes the collection, so
        that a collection is listed (and served as `rag/<name>`) only while it holds any.
        Nothing to do if the collection is gone (another process removed it meanwhile).
        Returns the documents whose name changed with it (a namesake's may shrink) -> their
        name now."""

    @abstractmethod
    def keyword_search(self, collection: str, query: str, limit: int) -> list[ScoredChunk]:
        """BM25 over the chunks of `collection`, best first (higher score is better)."""

    @abstractmethod
    def vector_search(
        self, collection: str, embedding: npt.NDArray[np.float32], limit: int
    ) -> list[ScoredChunk]:
        """Nearest chunks by cosine similarity, best first (score = similarity)."""

    @abstractmethod
    def fetch_chunks(self, chunk_ids: Sequence[int]) -> dict[int, StoredChunk]: ...

    @abstractmethod
    def collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    def drop_collection(self, collection: str) -> None:
        """Remove the collection, its documents and their chunks (`CollectionNotFound` if
        there is no such collection)."""

    @abstractmethod
    def close(self) -> None: ...

    def replaced(self) -> bool:
        """Whether the store this object opened is no longer the one at its place (a file
        moved aside and ingested anew): its owner should open it again."""
        return False


def open_store(
    data_dir: Path | str,
    *,
    refuse_other_settings: bool = True,
    in_memory_copies: bool = True,
) -> SqliteChunkStore:
    """The store at `data_dir/rag.sqlite` (the config's `data_dir`).

    `in_memory_copies=False` for a process that searches once or twice: SQLite answers a
    search in ~0.1 s at 100k chunks, while building the fast copies takes seconds.
    `StoreNeedsReindex` or `StoreUnusable` (damaged, not writable...) when it cannot be used.
    """
    directory = Path(data_dir).expanduser()
    from smallfirst.rag.sqlite_file import store_errors
    from smallfirst.rag.sqlite_store import SqliteChunkStore

    create_private_dir(directory)
    with store_errors(directory / STORE_FILENAME):
        return SqliteChunkStore(
            directory / STORE_FILENAME,
            refuse_other_settings=refuse_other_settings,
            memory_vectors=in_memory_copies,
            memory_keyword_index=in_memory_copies,
        )


def store_problem(data_dir: Path) -> str | None:
    """Why `rag/<collection>` requests could not use the store in `data_dir` (another
    version's, damaged, unreadable, sqlite-vec missing), or None; a data dir without a store
    has no problem."""
    from smallfirst.rag.sqlite_file import store_errors

    if not (data_dir / STORE_FILENAME).is_file():
        return None
    try:
        store = open_store(data_dir, in_memory_copies=False)
        try:
            with store_errors(store.path):
                store.collections()  # what GET /v1/models reads
        finally:
            store.close()
    except SmallfirstError as exc:  # e.g. StoreNeedsReindex, StoreUnusable
        return exc.message
    return None
