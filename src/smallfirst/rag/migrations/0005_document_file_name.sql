-- The last part of a document's path, indexed: a document that comes or goes can only change
-- the names of those sharing it (`rag/names.py`), found by the index rather than by reading
-- every path of the collection (ingesting 20,000 files read 200 million). '' for documents
-- stored before: filled on open (`rag/store_schema.py`).
ALTER TABLE documents ADD COLUMN file_name TEXT NOT NULL DEFAULT '';
CREATE INDEX documents_by_file_name ON documents(collection_id, file_name);
