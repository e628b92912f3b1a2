"""`SqliteChunkStore`: one SQLite file per data dir with FTS5 (BM25) and sqlite-vec (vectors).

WAL mode; the schema comes from named migrations applied in order and recorded in
`_migrations` (`rag/store_schema.py`, with the check of what made the store); in-memory
copies of the vectors and of the BM25 postings make searches fast.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from smallfirst.embed.batches import embedded_batches
from smallfirst.paths import create_private, file_identity
from smallfirst.rag.analysis import analyze, fts5_or_expression, query_terms
from smallfirst.rag.chunking import Chunk, embedding_text
from smallfirst.rag.copies import Copies
from smallfirst.rag.names import file_name, name_again
from smallfirst.rag.sqlite_file import connect, read_only_uri, sqlite_module
from smallfirst.rag.store import (
    EMBEDDING_DIMENSIONS,
    ChunkStore,
    CollectionInfo,
    CollectionNotFound,
    ScoredChunk,
    StoredChunk,
)
from smallfirst.rag.store_schema import CURRENT_SETTINGS, Transaction, set_up_schema
from smallfirst.rag.vector_scan import (
    BINARY_PREFILTER_ROWS,
    binary_codes,
    prefiltered_candidates,
)
from smallfirst.sqlite_snapshot import one_snapshot

if TYPE_CHECKING:
    import sqlite3

    import numpy as np
    import numpy.typing as npt

    from smallfirst.rag.keyword_index import KeywordIndex

T = TypeVar("T")
VectorMatrix = tuple[Any, Any, Any]  # chunk ids, float32 matrix, binary codes (or None)
ChunkRow = tuple[int, str, str, int]  # chunk id, heading, text, collection id
PARALLEL_SCAN_ROWS = 20_000  # below this many rows per half, a thread hand-off costs more
REINDEX_BATCH = 32


class SqliteChunkStore(ChunkStore):
    """FTS5 for BM25, a vec0 table for vectors, and in-memory copies of both for fast search.

    sqlite-vec's brute-force scan takes ~100 ms at 100k chunks on this machine; a NumPy
    matrix of the same vectors answers the same exact query in a fraction of that, so
    `vector_search` uses the matrix unless `memory_vectors=False`. Likewise FTS5's `bm25()`
    runs on every matching row (~10 ms at 100k chunks), so `keyword_search` adds up
    precomputed weights from a `KeywordIndex` per collection (same scores while the store
    holds one collection, see `rag/keyword_index.py`) unless `memory_keyword_index=False`.
    Both copies are rebuilt in the background after writes (`rag/copies.py`); until they are
    ready, searches use FTS5 and sqlite-vec. `warm(collection)` builds them now.

    Writes go through one connection under a lock; `keyword_search` and `fetch_chunks` use
    a pool of read-only connections, so concurrent searches do not wait for each other.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        memory_vectors: bool = True,
        memory_keyword_index: bool = True,
        refuse_other_settings: bool = True,
    ) -> None:
        """`refuse_other_settings=False` opens a store made by another analyzer or embedder,
        for `reindex` only: searching it would compare unlike terms or vectors. A store in a
        folder that cannot be written (a read-only volume) is opened read-only: it can be
        searched, and writing to it fails saying so."""
        self.path = Path(path)
        self._read_only_uri = read_only_uri(self.path)
        if self._read_only_uri is None:  # the documents' text: not for other users
            create_private(self.path)
        self._lock = threading.RLock()
        self._db = self._connect()
        self._file = file_identity(self.path)
        try:
            self._set_up(refuse_other_settings)
        except BaseException:  # a store that cannot be used leaves no connection behind
            self._db.close()
            raise
        self._memory_vectors = memory_vectors
        self._memory_keyword_index = memory_keyword_index
        # two threads: the two kinds of copies of a collection build side by side
        self._builders = ThreadPoolExecutor(2, thread_name_prefix="smallfirst-rag-copies")
        self._matrices = Copies(
            "vector matrix", self._load_matrix, self._builders, self._locked_write_stamp
        )
        self._keyword_indexes = Copies(
            "keyword index", self._build_keyword_index, self._builders, self._locked_write_stamp
        )
        self._writes = 0  # write transactions begun by this connection
        # starts its one thread on first use: a scan of more than 2 x PARALLEL_SCAN_ROWS
        self._scan_pool = ThreadPoolExecutor(1, thread_name_prefix="smallfirst-scan")
        # Read-only connections for keyword search and chunk fetches, so that queries from
        # several threads (e.g. both sides of a hybrid search) run in parallel under WAL.
        self._readers: list[sqlite3.Connection] = []
        self._idle_readers: list[sqlite3.Connection] = []

    def _set_up(self, refuse_other_settings: bool) -> None:
        if self._read_only_uri is None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps this crash-safe
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate(refuse_other_settings)

    def _connect(self) -> sqlite3.Connection:
        return connect(self._read_only_uri or self.path)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A pooled read-only connection, held by one thread at a time."""
        with self._lock:
            connection = self._idle_readers.pop() if self._idle_readers else None
        if connection is None:
            if self.replaced():  # a new connection would read the other file, now at `path`
                with self._lock:
                    yield self._db
                return
            connection = self._connect()
            connection.execute("PRAGMA query_only=ON")
            with self._lock:
                self._readers.append(connection)
        try:
            yield connection
        finally:
            with self._lock:
                self._idle_readers.append(connection)

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self, refuse_other_settings: bool) -> None:
        writable = self._read_only_uri is None
        with self._lock:
            set_up_schema(
                self._db, self.path, writable=writable, refuse_other_settings=refuse_other_settings
            )

    # -- writes ---------------------------------------------------------------------------

    def _collection_id(self, name: str, *, create: bool = False) -> int:
        row = self._db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            raise CollectionNotFound(f"RAG collection {name!r} does not exist")
        cursor = self._db.execute("INSERT INTO collections(name) VALUES (?)", (name,))
        return int(cursor.lastrowid or 0)

    def document_hashes(self, collection: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT d.source, d.content_hash FROM documents d "
                "JOIN collections c ON c.id = d.collection_id WHERE c.name = ?",
                (collection,),
            ).fetchall()
        return {str(source): str(digest) for source, digest in rows}

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
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        with self._lock, self._transaction():
            collection_id = self._collection_id(collection, create=True)
            self._delete_document(collection_id, source)
            document_id = self._db.execute(
                "INSERT INTO documents(collection_id, source, file_name, title, content_hash) "
                "VALUES (?, ?, ?, ?, ?)",
                (collection_id, source, file_name(source), title, content_hash),
            ).lastrowid
            for chunk, vector in zip(chunks, embeddings, strict=True):
                inserted = self._db.execute(
                    "INSERT INTO chunks(document_id, ordinal, heading, text, char_start, char_end)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        document_id,
                        chunk.ordinal,
                        chunk.heading,
                        chunk.text,
                        chunk.char_start,
                        chunk.char_end,
                    ),
                )
                chunk_id = cast(int, inserted.lastrowid)  # an INSERT always sets it
                self._insert_search_rows(chunk_id, collection_id, chunk.heading, chunk.text, vector)
            renamed = name_again(self._db, collection_id, file_name(source))
        renamed.pop(source, None)  # named for the first time, or as before
        return renamed

    def _insert_search_rows(
        self, chunk_id: int, collection_id: int, heading: str, text: str, vector: Any
    ) -> None:
        """The chunk's analysed terms (FTS5) and its vector (vec0)."""
        self._db.execute(
            "INSERT INTO chunks_fts(rowid, collection, heading, body) VALUES (?, ?, ?, ?)",
            (
                chunk_id,
                _collection_token(collection_id),
                " ".join(analyze(heading)),
                " ".join(analyze(text)),
            ),
        )
        self._db.execute(
            "INSERT INTO chunk_vectors(chunk_id, collection_id, embedding) VALUES (?, ?, ?)",
            (chunk_id, collection_id, _as_blob(vector)),
        )

    def _delete_search_rows(self, chunk_id: int) -> None:
        self._db.execute("DELETE FROM chunks_fts WHERE rowid = ?", (chunk_id,))
        self._db.execute("DELETE FROM chunk_vectors WHERE chunk_id = ?", (chunk_id,))

    def reindex(
        self,
        embed_texts: Callable[[list[str]], npt.NDArray[np.float32]],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-analyse and re-embed every stored chunk with this version's analyzer and
        embedder, and record both. One transaction: an interrupted reindex changes nothing.
        Returns the number of chunks; `on_progress(done, total)` after each batch.

        The chunks are embedded before the transaction, which then only writes: holding the
        write lock through the embedding (minutes at 100k chunks) failed another process's
        `rag ingest` after its busy timeout. A chunk written meanwhile is embedded inside."""
        rows = self._chunk_rows()
        vectors = _embedded(rows, embed_texts, on_progress)
        with self._lock, self._transaction():
            current = self._chunk_rows()
            vectors |= _embedded([row for row in current if row not in vectors], embed_texts)
            for row in current:
                chunk_id, heading, text, collection_id = row
                self._delete_search_rows(chunk_id)
                self._insert_search_rows(chunk_id, collection_id, heading, text, vectors[row])
            for key, value in CURRENT_SETTINGS:
                self._db.execute(
                    "INSERT INTO store_settings(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        return len(current)

    def _chunk_rows(self) -> list[ChunkRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.heading, c.text, d.collection_id FROM chunks c "
                "JOIN documents d ON d.id = c.document_id ORDER BY c.id"
            ).fetchall()
        return [(int(i), str(h), str(t), int(c)) for i, h, t, c in rows]

    def remove_document(self, collection: str, source: str) -> dict[str, str]:
        with self._lock, self._transaction():
            found = self._db.execute("SELECT id FROM collections WHERE name = ?", (collection,))
            row = found.fetchone()
            if row is None:  # another process removed its last document, and with it the rest
                return {}
            collection_id = int(row[0])
            self._delete_document(collection_id, source)
            renamed = name_again(self._db, collection_id, file_name(source))
            self._db.execute(  # its last document: the collection goes too
                "DELETE FROM collections WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM documents WHERE collection_id = ?)",
                (collection_id, collection_id),
            )
        return renamed

    def drop_collection(self, collection: str) -> None:
        with self._lock, self._transaction():
            collection_id = self._collection_id(collection)
            for (source,) in self._db.execute(
                "SELECT source FROM documents WHERE collection_id = ?", (collection_id,)
            ).fetchall():
                self._delete_document(collection_id, source)
            self._db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

    def _delete_document(self, collection_id: int, source: str) -> None:
        row = self._db.execute(
            "SELECT id FROM documents WHERE collection_id = ? AND source = ?",
            (collection_id, source),
        ).fetchone()
        if row is None:
            return
        chunk_ids = [
            r[0] for r in self._db.execute("SELECT id FROM chunks WHERE document_id = ?", (row[0],))
        ]
        for chunk_id in chunk_ids:  # virtual tables know nothing of foreign keys
            self._delete_search_rows(chunk_id)
        self._db.execute("DELETE FROM documents WHERE id = ?", (row[0],))

    def _transaction(self) -> Transaction:
        self._matrices.clear()
        self._keyword_indexes.clear()
        # a copy being built meanwhile (outside the lock) is stale: its stamp says so
        self._writes += 1
        return Transaction(self._db)

    def _locked_write_stamp(self) -> tuple[int, int]:
        with self._lock:
            return self._write_stamp()

    def _write_stamp(self) -> tuple[int, int]:
        """Changes with every commit: other connections' (data_version) and ours (a count)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._writes

    # -- reads ----------------------------------------------------------------------------

    def keyword_search(self, collection: str, query: str, limit: int) -> list[ScoredChunk]:
        terms = query_terms(query)
        if not terms or limit <= 0:
            return []
        memory = self._memory_keyword_index
        index = self._copy(self._keyword_indexes, collection) if memory else None
        if index is not None:
            found = index.search(terms, limit)
            if found is not None:
                ids, scores = (array.tolist() for array in found)
                return [ScoredChunk(i, s) for i, s in zip(ids, scores, strict=True)]
        # only text columns: a query word spelled like a collection token ("c7") must not
        # match every chunk of that collection
        expression = "{heading body} : (" + fts5_or_expression(terms) + ")"
        return self._fts5_keyword_search(collection, expression, limit)

    def _copy(self, copies: Copies[T], collection: str) -> T | None:
        """The collection's current in-memory copy, or None while it is being built."""
        with self._lock:
            collection_id = self._collection_id(collection)
            stamp = self._write_stamp()
        return copies.get(collection_id, stamp)

    def warm(self, collection: str) -> None:
        """Build the collection's in-memory copies now, instead of in the background on its
        first search (benchmarks and evaluations time the searches, not the builds)."""
        with self._lock:
            collection_id = self._collection_id(collection)
            stamp = self._write_stamp()
        for copies, wanted in (
            (self._matrices, self._memory_vectors),
            (self._keyword_indexes, self._memory_keyword_index),
        ):
            if wanted:
                copies.wait_for(collection_id, stamp)

    def _build_keyword_index(self, collection_id: int) -> KeywordIndex:
        from smallfirst.rag.keyword_index import KeywordIndex, fts5_tokenizer

        query = (  # a plain scan: twice as fast as MATCH on the collection token here
            "SELECT rowid, heading || ' ' || body FROM chunks_fts "
            "WHERE collection = ? ORDER BY rowid"
        )
        # closed even if the build fails: an open statement would pin this pooled
        # connection's snapshot for whoever uses it next
        with (
            self._reader() as db,
            closing(db.execute(query, (_collection_token(collection_id),))) as rows,
        ):
            return KeywordIndex.build(rows, fts5_tokenizer(_memory_database))

    def _fts5_keyword_search(
        self, collection: str, expression: str, limit: int
    ) -> list[ScoredChunk]:
        """BM25 by FTS5 itself (`bm25()` on every matching row)."""
        with self._reader() as db, one_snapshot(db):
            collection_ids = dict(db.execute("SELECT name, id FROM collections").fetchall())
            if collection not in collection_ids:
                raise CollectionNotFound(f"RAG collection {collection!r} does not exist")
            if len(collection_ids) > 1:
                # The filter token is in every chunk of the collection, so its posting list
                # is as long as the collection: bm25() reads all of it for its idf and the
                # AND seeks it for every match (nearly doubling the query at 100k chunks).
                # A store holding only this collection needs no filter.
                token = _collection_token(int(collection_ids[collection]))
                expression = f"collection : {token} AND ({expression})"
            rows = db.execute(
                # weight 0 for the collection column: its token must not move scores
                "SELECT rowid, bm25(chunks_fts, 0.0, 1.0, 1.0) AS score FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?",
                (expression, limit),
            ).fetchall()
        return [ScoredChunk(int(chunk_id), -float(score)) for chunk_id, score in rows]

    def vector_search(
        self, collection: str, embedding: npt.NDArray[np.float32], limit: int
    ) -> list[ScoredChunk]:
        import numpy as np

        if limit <= 0:
            return []
        copy = self._copy(self._matrices, collection) if self._memory_vectors else None
        if copy is None:
            with self._lock:
                rows = self._db.execute(
                    "SELECT chunk_id, distance FROM chunk_vectors WHERE embedding MATCH ? "
                    "AND k = ? AND collection_id = ? ORDER BY distance",
                    (_as_blob(embedding), min(limit, 4096), self._collection_id(collection)),
                ).fetchall()
            return [ScoredChunk(int(i), 1.0 - float(d)) for i, d in rows]
        ids, matrix, codes = copy
        if len(ids) == 0:
            return []
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if codes is not None:  # a large collection: binary codes first, exact rescoring after
            nearest = prefiltered_candidates(codes, query, limit)
            return _top_by_dot(ids[nearest], np.vecdot(matrix[nearest], query), limit)
        return _top_by_dot(ids, self._similarities(matrix, query), limit)

    def _similarities(self, matrix: Any, query: npt.NDArray[np.float32]) -> Any:
        """Dot product of every row with `query` (flat float32), the halves on two threads.

        Row-by-row dots (`vecdot`), not one BLAS matrix-vector product: OpenBLAS splits that
        over threads of its own, which keep spinning after it returns and take a core from
        the BM25 query and query embedding running beside it (measured: hybrid p50 ~1.3x,
        p95 ~1.5x on a busy two-core machine). The scan is memory-bound, so two threads
        still help; ours stop when done.
        """
        import numpy as np

        half = len(matrix) // 2
        if half < PARALLEL_SCAN_ROWS:
            return np.vecdot(matrix, query)
        upper = self._scan_pool.submit(np.vecdot, matrix[half:], query)
        return np.concatenate([np.vecdot(matrix[:half], query), upper.result()])

    def _load_matrix(self, collection_id: int) -> VectorMatrix:
        """(chunk ids, float matrix, binary codes or None below BINARY_PREFILTER_ROWS)."""
        import numpy as np

        with self._reader() as db:
            rows = db.execute(
                "SELECT chunk_id, embedding FROM chunk_vectors WHERE collection_id = ?",
                (collection_id,),
            ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
            len(rows), EMBEDDING_DIMENSIONS
        )
        codes = binary_codes(matrix) if len(rows) >= BINARY_PREFILTER_ROWS else None
        return ids, matrix, codes

    def fetch_chunks(self, chunk_ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not chunk_ids:
            return {}
        found: dict[int, StoredChunk] = {}
        with self._reader() as db:
            for start in range(0, len(chunk_ids), 500):
                batch = list(chunk_ids[start : start + 500])
                marks = ",".join("?" * len(batch))
                for row in db.execute(
                    "SELECT c.id, c.document_id, d.source, d.title, c.heading, c.text, "
                    "c.char_start, c.char_end, d.shown_as FROM chunks c JOIN documents d "
                    f"ON d.id = c.document_id WHERE c.id IN ({marks})",
                    batch,
                ):
                    found[int(row[0])] = StoredChunk(*row)
        return found

    def collections(self) -> list[CollectionInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.name, COUNT(DISTINCT d.id), COUNT(k.id) FROM collections c "
                "LEFT JOIN documents d ON d.collection_id = c.id "
                "LEFT JOIN chunks k ON k.document_id = d.id GROUP BY c.id ORDER BY c.name"
            ).fetchall()
        return [CollectionInfo(str(n), int(d), int(k)) for n, d, k in rows]

    def replaced(self) -> bool:
        """True once the file at `path` is not the one opened: a connection keeps reading
        the file it opened, moved aside or deleted, while `rag ingest` makes a new one."""
        return file_identity(self.path) != self._file

    def close(self) -> None:
        self._builders.shutdown(cancel_futures=True)  # a build under way needs the readers
        with self._lock:
            self._matrices.clear()
            self._keyword_indexes.clear()
            self._scan_pool.shutdown()
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._idle_readers.clear()
            if self._writes:
                self._empty_wal()
            self._db.close()

    def _empty_wal(self) -> None:
        """Copy the -wal file into the store and cut it to nothing: SQLite keeps it at the
        largest size it reached while another connection has the store open (an ingest of
        2,000 chunks beside a serving gateway left a 5.6 MB rag.sqlite-wal next to a 7 MB
        store until the gateway stopped). A reader of an older snapshot keeps it as it is."""
        with suppress(sqlite_module().Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _embedded(
    rows: Sequence[ChunkRow],
    embed_texts: Callable[[list[str]], npt.NDArray[np.float32]],
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[ChunkRow, Any]:
    """Each chunk row's vector, in batches (`on_progress(done, total)` after each)."""
    texts = [embedding_text(heading, text) for _, heading, text, _ in rows]
    vectors: dict[ChunkRow, Any] = {}
    for start, batch in embedded_batches(texts, embed_texts, REINDEX_BATCH):
        vectors.update(zip(rows[start : start + len(batch)], batch, strict=True))
        if on_progress is not None:
            on_progress(start + len(batch), len(rows))
    return vectors


def _top_by_dot(ids: Any, scores: Any, limit: int) -> list[ScoredChunk]:
    import numpy as np

    if limit < len(scores):
        top = np.argpartition(-scores, limit - 1)[:limit]
    else:
        top = np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [ScoredChunk(int(ids[i]), float(scores[i])) for i in top]


def _as_blob(vector: Any) -> bytes:
    import numpy as np

    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != EMBEDDING_DIMENSIONS:
        raise ValueError(f"expected a {EMBEDDING_DIMENSIONS}-d vector, got {array.shape[0]}")
    return array.tobytes()


def _memory_database() -> sqlite3.Connection:
    """An empty in-memory database of the SQLite the store uses (for its FTS5 tokenizer)."""
    connection: sqlite3.Connection = sqlite_module().connect(":memory:")
    return connection


def _collection_token(collection_id: int) -> str:
    return f"c{collection_id}"
