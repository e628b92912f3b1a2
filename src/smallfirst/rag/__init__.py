"""Retrieval-augmented generation: ingest local files, search them, build grounded prompts.

The service's path for `model: "rag/<collection>"`:

    store = open_store(settings.resolved_data_dir)          # once per process
    retriever = Retriever(store)                            # once; loads MiniLM on first use
    hits = retriever.search(last_user_text(messages), collection=name, k=5)
    prompt = build_grounded_messages(messages, hits, count_tokens=..., budget=...)
    # send prompt.messages to the chosen backend; return prompt.citations with the answer
"""

from smallfirst.rag.chunking import Chunk, chunk_text
from smallfirst.rag.ingest import IngestSummary, discover_files, ingest_paths
from smallfirst.rag.prompt import (
    GROUNDING_RULE,
    Citation,
    GroundedPrompt,
    build_grounded_messages,
    fence_source,
    last_user_text,
)
from smallfirst.rag.retrieve import (
    METHODS,
    Hit,
    Method,
    Retriever,
    reciprocal_rank_fusion,
)
from smallfirst.rag.sqlite_file import store_errors
from smallfirst.rag.sqlite_store import SqliteChunkStore
from smallfirst.rag.store import (
    ChunkStore,
    CollectionInfo,
    CollectionNotFound,
    ScoredChunk,
    StoreBusy,
    StoredChunk,
    StoreFull,
    StoreNeedsReindex,
    StoreUnusable,
    open_store,
    store_problem,
)

__all__ = [
    "GROUNDING_RULE",
    "METHODS",
    "Chunk",
    "ChunkStore",
    "Citation",
    "CollectionInfo",
    "CollectionNotFound",
    "GroundedPrompt",
    "Hit",
    "IngestSummary",
    "Method",
    "Retriever",
    "ScoredChunk",
    "SqliteChunkStore",
    "StoreBusy",
    "StoreFull",
    "StoreNeedsReindex",
    "StoreUnusable",
    "StoredChunk",
    "build_grounded_messages",
    "chunk_text",
    "discover_files",
    "fence_source",
    "ingest_paths",
    "last_user_text",
    "open_store",
    "reciprocal_rank_fusion",
    "store_errors",
    "store_problem",
]
