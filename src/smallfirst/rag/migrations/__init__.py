"""The RAG store's schema: `NNNN_name.sql`, applied in order (`smallfirst.sqlite_migrations`)."""

from smallfirst.sqlite_migrations import MigrationsTable

# As the store shipped it: names with ".sql", applied_at an ISO text.
RECORDED_AS = MigrationsTable(
    create="CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
    "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    record="INSERT INTO _migrations (name) VALUES (?)",
    names_keep_suffix=True,
)
