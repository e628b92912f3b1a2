-- Collections of documents; a document is one source file (or one eval corpus entry).
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL,
    ingested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (collection_id, source)
);

CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL
);
CREATE INDEX chunks_document ON chunks(document_id);

-- Analysed terms (see rag/analysis.py), rowid = chunks.id; BM25 over heading + body.
-- `collection` holds one indexed token ("c<id>") so that filtering by collection happens in
-- the index (an UNINDEXED column would read every matching row's content).
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    collection, heading, body, tokenize = 'unicode61 remove_diacritics 2'
);

-- all-MiniLM-L6-v2 vectors (384-d, L2-normalised), partitioned by collection.
CREATE VIRTUAL TABLE chunk_vectors USING vec0(
    chunk_id INTEGER PRIMARY KEY,
    collection_id INTEGER PARTITION KEY,
    embedding FLOAT[384] distance_metric=cosine
);

CREATE TABLE store_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
