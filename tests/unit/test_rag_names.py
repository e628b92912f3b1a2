"""The names citations give the documents of a collection: one name per document, whatever
the order of ingests, no longer than it takes to tell namesakes apart (`rag/names.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smallfirst.cli.rag import app
from smallfirst.rag import SqliteChunkStore
from smallfirst.rag.names import cited_names
from tests.unit.test_rag_ingest import ingest_summary

runner = CliRunner()


def names(store: SqliteChunkStore, root: Path) -> dict[str, str]:
    """Path under `root` -> name, of every document of the collection "docs"."""
    rows = store._db.execute("SELECT source, shown_as FROM documents")
    return {Path(source).relative_to(root).as_posix(): name for source, name in rows}


def test_a_name_is_the_shortest_tail_no_other_document_shares() -> None:
    assert cited_names(
        ["/srv/hr/kitchen/coffee.md", "/srv/ops/bar/coffee.md", "/srv/hr/tea.md", "q-17"]
    ) == {
        "/srv/hr/kitchen/coffee.md": "kitchen/coffee.md",
        "/srv/ops/bar/coffee.md": "bar/coffee.md",
        "/srv/hr/tea.md": "tea.md",
        "q-17": "q-17",  # an evaluation corpus id
    }
    assert cited_names(["/a/docs/README.md", "/b/docs/README.md", "/b/README.md"]) == {
        "/a/docs/README.md": "a/docs/README.md",
        "/b/docs/README.md": "b/docs/README.md",
        "/b/README.md": "b/README.md",
    }
    # every tail of /a/z.md is one of /x/a/z.md's: it is named by its whole path
    assert cited_names(["/a/z.md", "/x/a/z.md"]) == {"/a/z.md": "a/z.md", "/x/a/z.md": "x/a/z.md"}


@pytest.mark.parametrize("order", ["inner folder first", "outer folder first"])
def test_two_files_of_one_name_get_two_names_whatever_the_order_of_ingests(
    store: SqliteChunkStore, tmp_path: Path, order: str
) -> None:
    """An unchanged file is skipped at re-ingest: `a/b/z.md`, ingested as `a/b`, kept the
    name `z.md` when `a` was ingested with its own `z.md`, and both were cited as `z.md`."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "z.md").write_text("Zebras live in Africa.\n")
    (tmp_path / "a" / "z.md").write_text("Zebras are striped.\n")
    inner, outer = tmp_path / "a" / "b", tmp_path / "a"

    first, second = (inner, outer) if order == "inner folder first" else (outer, inner)
    ingest_summary(store, first)
    again = ingest_summary(store, second)

    assert names(store, tmp_path) == {"a/b/z.md": "b/z.md", "a/z.md": "a/z.md"}
    if order == "inner folder first":  # the summary says which stored name changed
        assert again.renamed == {str(inner / "z.md"): "b/z.md"}


def test_a_name_grows_when_a_namesake_comes_and_shrinks_when_it_goes(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    """Two folders given to one ingest both held a README.md: both were cited `README.md`."""
    for folder in ("acme", "globex"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"How {folder} files its invoices.\n")
    (tmp_path / "acme" / "notes.md").write_text("Invoices go out monthly.\n")

    ingest_summary(store, tmp_path / "acme", tmp_path / "globex")
    assert names(store, tmp_path) == {
        "acme/README.md": "acme/README.md",
        "globex/README.md": "globex/README.md",
        "acme/notes.md": "notes.md",
    }

    (tmp_path / "globex" / "README.md").unlink()
    after = ingest_summary(store, tmp_path / "globex")

    assert names(store, tmp_path) == {"acme/README.md": "README.md", "acme/notes.md": "notes.md"}
    assert after.renamed == {str(tmp_path / "acme" / "README.md"): "README.md"}
    assert store.remove_document("docs", str(tmp_path / "acme" / "notes.md")) == {}


def test_names_given_by_an_older_version_are_given_again_once(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite"
    older = SqliteChunkStore(path)
    for source in ("/srv/a/z.md", "/srv/a/b/z.md"):
        put_empty(older, source)
    older._db.execute("UPDATE documents SET shown_as = 'z.md'")  # as ingests of a/b, then a
    older._db.execute("DELETE FROM _migrations WHERE name = '0004_name_documents_again.sql'")
    older.close()

    upgraded = SqliteChunkStore(path)
    try:
        rows = dict(upgraded._db.execute("SELECT source, shown_as FROM documents"))
    finally:
        upgraded.close()
    assert rows == {"/srv/a/z.md": "a/z.md", "/srv/a/b/z.md": "b/z.md"}


def test_documents_stored_before_file_names_were_kept_are_found_by_a_namesake(
    tmp_path: Path,
) -> None:
    """Migration 0005 leaves their `file_name` empty; filled on open, a later namesake finds
    them, and both get longer names."""
    path = tmp_path / "rag.sqlite"
    older = SqliteChunkStore(path)
    put_empty(older, "/srv/a/z.md")
    older._db.execute("DROP INDEX documents_by_file_name")
    older._db.execute("ALTER TABLE documents DROP COLUMN file_name")
    older._db.execute("DELETE FROM _migrations WHERE name = '0005_document_file_name.sql'")
    older.close()

    upgraded = SqliteChunkStore(path)
    try:
        renamed = put_empty(upgraded, "/srv/b/z.md")
        rows = dict(upgraded._db.execute("SELECT source, shown_as FROM documents"))
    finally:
        upgraded.close()
    assert renamed == {"/srv/a/z.md": "a/z.md"}
    assert rows == {"/srv/a/z.md": "a/z.md", "/srv/b/z.md": "b/z.md"}


def test_ingest_and_delete_say_which_documents_are_cited_by_a_new_name(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    for folder in ("acme", "globex"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"How {folder} files its invoices.\n")
    first = runner.invoke(app, ["ingest", str(tmp_path / "acme"), "-c", "kb", *data])
    second = runner.invoke(app, ["ingest", str(tmp_path / "globex"), "-c", "kb", *data])
    deleted = runner.invoke(app, ["delete", "kb", str(tmp_path / "globex"), "-y", "--json", *data])

    assert first.exit_code == second.exit_code == deleted.exit_code == 0, deleted.output
    assert "cited by a new name" not in first.stdout
    acme = tmp_path / "acme" / "README.md"
    assert f"  cited by a new name (1): {acme} as acme/README.md" in second.stdout
    assert json.loads(deleted.stdout)["renamed"] == {str(acme): "README.md"}


def test_a_namesake_that_changes_no_stored_name_renames_nothing(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    for folder in ("acme", "globex", "initech"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"How {folder} files its invoices.\n")
    ingest_summary(store, tmp_path / "acme", tmp_path / "globex")

    third = ingest_summary(store, tmp_path / "initech")

    assert third.renamed == {}
    assert names(store, tmp_path)["initech/README.md"] == "initech/README.md"
    assert store.remove_document("docs", str(tmp_path / "initech" / "README.md")) == {}


def put_empty(store: SqliteChunkStore, source: str) -> dict[str, str]:
    """Store a document without chunks as `source`; returns the names it changed."""
    empty = np.zeros((0, 384), dtype=np.float32)
    return store.put_document(
        "docs", source, title="", content_hash="", chunks=[], embeddings=empty
    )
