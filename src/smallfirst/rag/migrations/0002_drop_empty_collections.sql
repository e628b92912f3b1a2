-- A collection whose last document goes is deleted (rag/sqlite_store.py); stores from before
-- kept such collections, empty, listed in /v1/models for good.
DELETE FROM collections WHERE id NOT IN (SELECT collection_id FROM documents);
