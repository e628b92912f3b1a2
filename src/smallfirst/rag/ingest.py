"""Ingest local files into a collection: extract, chunk, embed locally, store.

Incremental: a file whose content hash is unchanged is skipped, a changed one is replaced,
and a file that disappeared from an ingested folder is removed from the collection.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.embed.batches import embedded_batches
from smallfirst.errors import InvalidRequest, SmallfirstError
from smallfirst.rag.chunking import Chunk, chunk_text
from smallfirst.rag.extract import extract, is_supported
from smallfirst.rag.store import ChunkStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CHUNKER_VERSION = "chunker-v1"  # part of the content hash: a new chunker re-ingests everything
EMBED_BATCH_SIZE = 32

TextEmbedder = Callable[[list[str]], "npt.NDArray[np.float32]"]
Progress = Callable[[int, int, str], None]  # (files done, files total, source)
ChunkProgress = Callable[[int, int], None]  # (chunks embedded, chunks of the current file)


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # stored, but nothing to search: empty files, PDFs of scanned pages (no text layer)
    without_text: list[str] = field(default_factory=list)
    chunks_written: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "skipped": len(self.skipped),
            "removed": len(self.removed),
            "failed": len(self.failed),
            "without_text": len(self.without_text),
            "chunks_written": self.chunks_written,
        }


def discover_files(paths: Sequence[Path]) -> list[Path]:
    """Supported files under `paths` (files as given, folders recursively), sorted, resolved."""
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise InvalidRequest(f"path not found: {path}")
        if path.is_file():
            if not is_supported(path):
                raise InvalidRequest(f"unsupported file type: {path}")
            found.add(path.resolve())
            continue
        for folder, subfolders, files in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            found.update(
                (Path(folder) / name).resolve()
                for name in files
                if not name.startswith(".") and is_supported(Path(name))
            )
    return sorted(found)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(CHUNKER_VERSION.encode() + b"\0" + raw).hexdigest()


def ingest_paths(
    store: ChunkStore,
    paths: Sequence[Path],
    *,
    collection: str,
    embed_texts: TextEmbedder | None = None,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    chunk_progress: ChunkProgress | None = None,
) -> IngestSummary:
    """Bring `collection` in line with the files under `paths` and say what changed."""
    if not collection.strip():
        raise InvalidRequest("collection name must not be empty", param="collection")
    files = discover_files(paths)
    embed_texts, count_tokens, max_tokens = _model_defaults(embed_texts, count_tokens, max_tokens)
    known = store.document_hashes(collection)
    summary = IngestSummary()
    for done, path in enumerate(files, start=1):
        source = str(path)
        try:
            raw = path.read_bytes()
            digest = content_hash(raw)
            if known.get(source) == digest:
                summary.skipped.append(source)
            else:
                document = extract(path, raw)
                chunks = chunk_text(
                    document.text,
                    count_tokens=count_tokens,
                    max_tokens=max_tokens,
                    markdown=document.markdown,
                    # a file without headings still gets its name as context
                    title=document.title or ("" if document.markdown else path.stem),
                )
                store.put_document(
                    collection,
                    source,
                    title=document.title or path.name,
                    content_hash=digest,
                    chunks=chunks,
                    embeddings=embed_chunks(chunks, embed_texts, chunk_progress),
                )
                summary.chunks_written += len(chunks)
                if not chunks:
                    summary.without_text.append(source)
                (summary.updated if source in known else summary.added).append(source)
        except (OSError, SmallfirstError) as exc:
            summary.failed[source] = str(exc)
        if progress is not None:
            progress(done, len(files), source)
    seen = {str(p) for p in files}
    for source in sorted(known):
        if source not in seen and _is_under(source, paths):
            store.remove_document(collection, source)
            summary.removed.append(source)
    return summary


def embed_chunks(
    chunks: Sequence[Chunk],
    embed_texts: TextEmbedder,
    progress: ChunkProgress | None = None,
) -> npt.NDArray[np.float32]:
    """Embeddings, one batch per core at a time (`embed.batches`); `progress` hears after each
    batch, in order (a big file takes minutes)."""
    import numpy as np

    texts = [c.embedding_text for c in chunks]
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    batches = []
    for start, batch in embedded_batches(texts, embed_texts, EMBED_BATCH_SIZE):
        batches.append(batch)
        if progress is not None:
            progress(start + len(batch), len(texts))
    return np.concatenate(batches).astype(np.float32, copy=False)


def _model_defaults(
    embed_texts: TextEmbedder | None,
    count_tokens: Callable[[str], int] | None,
    max_tokens: int | None,
) -> tuple[TextEmbedder, Callable[[str], int], int]:
    from smallfirst import embed

    if embed_texts is None or count_tokens is None:
        embedder = embed.get_embedder()
        embed_texts = embed_texts or embedder.embed
        count_tokens = count_tokens or embedder.count_tokens
    return embed_texts, count_tokens, max_tokens or embed.MAX_TOKENS


def _is_under(source: str, roots: Sequence[Path]) -> bool:
    for root in roots:
        resolved = str(root.resolve())
        if source == resolved or source.startswith(resolved.rstrip(os.sep) + os.sep):
            return True
    return False
