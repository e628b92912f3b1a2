-- Documents were named by their path under the folder ingested, kept as it was when a file
-- was skipped unchanged: two ingests (or two folders) gave two files one name. `shown_as` is
-- emptied here and set on open by `rag/names.py`'s rule (`SqliteChunkStore`), unique in the
-- collection.
UPDATE documents SET shown_as = '';
