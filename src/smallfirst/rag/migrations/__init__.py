"""The RAG store's schema: `NNNN_name.sql`, applied in order (`smallfirst.sqlite_migrations`)."""

from smallfirst.sqlite_migrations import MigrationsTable

# As the store shipped it: names with ".sql", applied_at an ISO text.
RECORDED_AS = MigrationsTable(
    create="CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
    "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    record="INSERT INTO _migrations (name) VALUES (?)",
    names_keep_suffix=True,
)
# Migrations that only writes need: a store on a read-only volume that an earlier version
# made is searched without them (it could not be migrated there, nor written to).
FOR_WRITES_ONLY = frozenset({"0005_document_file_name.sql"})
