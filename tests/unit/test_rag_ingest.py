from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from smallfirst.embed import EMBEDDER_ID
from smallfirst.errors import InvalidRequest
from smallfirst.rag import (
    CollectionNotFound,
    IngestSummary,
    Retriever,
    SqliteChunkStore,
    ingest_paths,
)
from smallfirst.rag.analysis import ANALYZER_NAME
from tests.unit.rag_fakes import count_words, fake_embed, fake_embed_query


def ingest(store: SqliteChunkStore, *paths: Path, collection: str = "docs") -> dict[str, int]:
    summary = ingest_paths(
        store,
        list(paths),
        collection=collection,
        embed_texts=fake_embed,
        count_tokens=count_words,
    )
    return summary.counts()


def ingest_summary(store: SqliteChunkStore, *paths: Path) -> IngestSummary:
    return ingest_paths(
        store, list(paths), collection="docs", embed_texts=fake_embed, count_tokens=count_words
    )


def sources(store: SqliteChunkStore, query: str) -> list[str]:
    hits = Retriever(store, fake_embed_query).search(query, collection="docs", method="bm25")
    return [hit.source for hit in hits]


def write_docs(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "cats.md").write_text("# Cats\n\nCats purr and chase mice.\n")
    (folder / "dogs.txt").write_text("Dogs bark at the mailman.\n")
    (folder / "page.html").write_text("<h1>Birds</h1><p>Birds sing at dawn.</p>")


def test_incremental_ingest_skips_updates_and_removes(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_docs(folder)

    first = ingest(store, folder)
    assert (first["added"], first["skipped"], first["removed"]) == (3, 0, 0)

    again = ingest(store, folder)
    assert (again["added"], again["updated"], again["skipped"], again["chunks_written"]) == (
        0,
        0,
        3,
        0,
    )

    (folder / "dogs.txt").write_text("Dogs fetch sticks in the park.\n")
    (folder / "cats.md").unlink()
    changed = ingest(store, folder)
    assert (changed["updated"], changed["removed"], changed["skipped"]) == (1, 1, 1)

    retriever = Retriever(store, fake_embed_query)
    assert retriever.search("purr mice", collection="docs", method="bm25") == []
    hits = retriever.search("fetch sticks", collection="docs", method="bm25")
    assert [Path(h.source).name for h in hits] == ["dogs.txt"]
    assert "bark" not in hits[0].text  # the old version is gone from the index
    assert store.collections()[0].documents == 2


def test_ingesting_another_folder_keeps_the_first(store: SqliteChunkStore, tmp_path: Path) -> None:
    write_docs(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "fish.md").write_text("Fish swim.\n")
    ingest(store, tmp_path / "a")
    assert ingest(store, tmp_path / "b")["removed"] == 0
    assert store.collections()[0].documents == 4


def test_search_returns_spans_and_headings(store: SqliteChunkStore, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    ingest(store, tmp_path / "docs")
    for method in ("bm25", "vector", "hybrid"):
        hits = Retriever(store, fake_embed_query).search(
            "why do cats purr", collection="docs", k=2, method=method
        )
        top = hits[0]
        assert Path(top.source).name == "cats.md", method
        assert top.heading == "Cats"
        source_text = Path(top.source).read_text()
        assert source_text[top.char_start : top.char_end] == top.text


def test_memory_matrix_and_sqlite_vec_agree(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    with_matrix = SqliteChunkStore(tmp_path / "rag.sqlite")
    plain_vec0 = SqliteChunkStore(tmp_path / "rag.sqlite", memory_vectors=False)
    try:
        ingest(with_matrix, tmp_path / "docs")
        query = fake_embed_query("birds sing")
        fast = with_matrix.vector_search("docs", query, 3)
        exact = plain_vec0.vector_search("docs", query, 3)
        assert fast[0].chunk_id == exact[0].chunk_id  # the others tie at 0
        assert np.allclose([c.score for c in fast], [c.score for c in exact], atol=1e-5)
        # a write through the other connection must invalidate the cached matrix
        (tmp_path / "docs" / "birds.txt").write_text("Birds sing loudly, birds sing.\n")
        ingest(plain_vec0, tmp_path / "docs")
        assert len(with_matrix.vector_search("docs", query, 10)) == 4
    finally:
        with_matrix.close()
        plain_vec0.close()


def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    SqliteChunkStore(tmp_path / "rag.sqlite").close()
    reopened = SqliteChunkStore(tmp_path / "rag.sqlite")
    try:
        rows = reopened._db.execute("SELECT name FROM _migrations").fetchall()
        mode = reopened._db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        reopened.close()
    assert rows == [
        ("0001_init.sql",),
        ("0002_drop_empty_collections.sql",),
        ("0003_document_shown_as.sql",),
        ("0004_name_documents_again.sql",),
        ("0005_document_file_name.sql",),
    ]
    assert mode == "wal"


def test_collections_left_empty_by_an_older_version_are_dropped_once(tmp_path: Path) -> None:
    """They stayed listed as rag/<name> in /v1/models for good."""
    path = tmp_path / "rag.sqlite"
    older = SqliteChunkStore(path)
    older._db.execute("INSERT INTO collections(name) VALUES ('emptied')")
    older._db.execute("DELETE FROM _migrations WHERE name = '0002_drop_empty_collections.sql'")
    older.close()
    upgraded = SqliteChunkStore(path)
    try:
        assert [c.name for c in upgraded.collections()] == []
    finally:
        upgraded.close()


@pytest.mark.parametrize(
    ("key", "recorded"),
    [("embedder", "all-minilm-l6-v2/some-other-recipe"), ("embedder", None), ("analyzer", "x")],
)
def test_a_store_made_by_another_embedder_or_analyzer_is_refused(
    tmp_path: Path, key: str, recorded: str | None
) -> None:
    """Vectors or terms from another model would be searched as if comparable: refuse."""
    store = SqliteChunkStore(tmp_path / "rag.sqlite")
    write_docs(tmp_path / "docs")
    ingest(store, tmp_path / "docs")
    if recorded is None:  # a store from before the embedder was recorded
        store._db.execute("DELETE FROM store_settings WHERE key = ?", (key,))
    else:
        store._db.execute("UPDATE store_settings SET value = ? WHERE key = ?", (recorded, key))
    store.close()
    with pytest.raises(InvalidRequest, match=f"indexed with {key} .*smallfirst rag reindex"):
        SqliteChunkStore(tmp_path / "rag.sqlite")


def test_reindex_re_embeds_every_chunk_and_records_the_current_settings(tmp_path: Path) -> None:
    store = SqliteChunkStore(tmp_path / "rag.sqlite")
    write_docs(tmp_path / "docs")
    ingest(store, tmp_path / "docs")
    store._db.execute("UPDATE store_settings SET value = 'old' WHERE key = 'embedder'")
    store.close()

    def flipped(texts: list[str]) -> npt.NDArray[np.float32]:  # another "model"
        return -fake_embed(texts)

    def failing(texts: list[str]) -> npt.NDArray[np.float32]:
        raise RuntimeError("the embedder stopped")

    reopened = SqliteChunkStore(tmp_path / "rag.sqlite", refuse_other_settings=False)
    with pytest.raises(RuntimeError):
        reopened.reindex(failing)  # all or nothing: the store is as it was
    query = fake_embed_query("cats purr")
    assert reopened.vector_search("docs", query, 1)[0].score > 0.5
    progress: list[tuple[int, int]] = []
    assert reopened.reindex(flipped, lambda done, total: progress.append((done, total))) == 3
    assert progress == [(3, 3)]
    assert reopened.vector_search("docs", -query, 1)[0].score > 0.5  # the new vectors
    reopened.close()

    store = SqliteChunkStore(tmp_path / "rag.sqlite")  # accepted again
    try:
        assert dict(store._db.execute("SELECT key, value FROM store_settings")) == {
            "analyzer": ANALYZER_NAME,
            "embedder": EMBEDDER_ID,
        }
        [hit] = store.keyword_search("docs", "purr", 5)
        assert store.fetch_chunks([hit.chunk_id])[hit.chunk_id].source.endswith("cats.md")
    finally:
        store.close()


def test_an_empty_store_records_the_current_embedder_and_analyzer(tmp_path: Path) -> None:
    SqliteChunkStore(tmp_path / "rag.sqlite").close()
    reopened = SqliteChunkStore(tmp_path / "rag.sqlite")
    try:
        settings = dict(reopened._db.execute("SELECT key, value FROM store_settings"))
    finally:
        reopened.close()
    assert settings == {"analyzer": ANALYZER_NAME, "embedder": EMBEDDER_ID}


def test_unknown_collection_and_missing_path_are_errors(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    with pytest.raises(CollectionNotFound):
        store.keyword_search("nope", "cats", 5)
    with pytest.raises(InvalidRequest, match="path not found"):
        ingest(store, tmp_path / "missing")


def test_text_in_other_encodings_is_read_and_binary_files_are_refused(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    notepad = "Quarterly budget review: Zoë approved the café renovation.\r\nNext steps follow."
    (folder / "windows.txt").write_bytes(notepad.encode("utf-16"))  # with a byte-order mark
    (folder / "no_bom.txt").write_bytes("Lighthouse maintenance schedule".encode("utf-16-le"))
    (folder / "legacy.md").write_bytes(
        ("# Résumé\n\n" + "Crème brûlée notes. " * 30).encode("cp1252")
    )
    (folder / "photo.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "empty.txt").write_bytes(b"")
    summary = ingest_paths(
        store, [folder], collection="docs", embed_texts=fake_embed, count_tokens=count_words
    )
    assert set(summary.failed) == {str((folder / "photo.txt").resolve())}
    assert "binary" in summary.failed[str((folder / "photo.txt").resolve())]
    assert summary.without_text == [str((folder / "empty.txt").resolve())]
    assert "Zoë approved the café renovation.\nNext steps" in stored_text(store, "renovation")
    assert "Lighthouse maintenance schedule" in stored_text(store, "lighthouse")
    assert "Crème brûlée" in stored_text(store, "notes")


def stored_text(store: SqliteChunkStore, word: str) -> str:
    hits = store.keyword_search("docs", word, 1)
    assert hits, word
    return store.fetch_chunks([hits[0].chunk_id])[hits[0].chunk_id].text


def test_embedding_progress_is_reported_within_a_big_file(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    big = tmp_path / "manual.md"
    big.write_text("\n\n".join(f"## Part {i}\n\n" + "word " * 300 for i in range(100)))
    heard: list[tuple[int, int]] = []
    summary = ingest_paths(
        store,
        [big],
        collection="docs",
        embed_texts=fake_embed,
        count_tokens=count_words,
        chunk_progress=lambda done, of: heard.append((done, of)),
    )
    total = summary.chunks_written
    assert total > 64
    assert heard[-1] == (total, total)
    assert [done for done, _ in heard] == sorted({done for done, _ in heard})  # it only grows
    assert len(heard) == -(-total // 32)  # once per embedding batch


def test_a_symlinked_file_is_stored_under_the_link_and_leaves_with_it(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    elsewhere = folder / ".elsewhere"  # hidden: reached through the link only
    elsewhere.mkdir(parents=True)
    (elsewhere / "ocelot.md").write_text("# Ocelot\n\nocelot rollout plan\n")
    link = folder / "ocelot.md"
    link.symlink_to(".elsewhere/ocelot.md")

    assert ingest_summary(store, folder).added == [str(link)]
    assert sources(store, "ocelot rollout") == [str(link)]  # the path the user knows
    assert ingest(store, folder)["skipped"] == 1  # unchanged through the link
    (elsewhere / "ocelot.md").write_text("# Ocelot\n\nocelot rollout postponed\n")
    assert ingest(store, folder)["updated"] == 1

    link.unlink()
    assert ingest_summary(store, folder).removed == [str(link)]
    assert store.collections() == []  # it was the only document: the collection went too


def test_symlinked_folders_are_followed_once_and_loops_are_reported(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    shared = folder / ".shared"  # hidden: reached through the links only
    (folder / "guide").mkdir(parents=True)
    shared.mkdir()
    (shared / "glossary.md").write_text("Glossary of llama terms.\n")
    (folder / "guide" / "setup.md").write_text("Setup needs a llama.\n")
    (folder / "shared_link").symlink_to(".shared")
    (folder / "shared_again").symlink_to(shared)  # the same folder twice
    (folder / "up").symlink_to("..")  # a loop
    (folder / "guide" / "here").symlink_to(".")  # a loop
    (folder / "a_guide").symlink_to("guide")  # sorts first; the real path still wins
    (folder / "latest.md").symlink_to("guide/setup.md")

    summary = ingest_summary(store, folder)

    assert summary.added == [
        str(folder / "guide" / "setup.md"),
        str(folder / "shared_again" / "glossary.md"),
    ]
    assert summary.ignored == {
        str(shared): "hidden",
        str(folder / "shared_link"): "folder already included",
        str(folder / "a_guide"): "folder already included",
        str(folder / "up"): "symlink loop",
        str(folder / "guide" / "here"): "symlink loop",
        str(folder / "latest.md"): "same file as another path",
    }
    (folder / "shared_again").unlink()
    again = ingest_summary(store, folder)
    assert again.removed == [str(folder / "shared_again" / "glossary.md")]
    assert again.added == [str(folder / "shared_link" / "glossary.md")]
    assert sources(store, "llama glossary")[0] == str(folder / "shared_link" / "glossary.md")


@pytest.mark.timeout(30)  # before, the walk handed the fifo to read_bytes, which waits forever
def test_unsupported_hidden_and_special_files_are_counted_not_silently_dropped(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.md").write_text("Notes.\n")
    for name in ("report.docx", "data.csv", "config.json", ".draft.md"):
        (folder / name).write_text("x")
    os.mkfifo(folder / "pipe.txt")  # reading it would block forever

    summary = ingest_summary(store, folder)

    assert summary.added == [str(folder / "notes.md")]
    assert summary.ignored_by_reason() == {
        "hidden": [str(folder / ".draft.md")],
        "not a regular file": [str(folder / "pipe.txt")],
        "unsupported file type": [
            str(folder / name) for name in ("config.json", "data.csv", "report.docx")
        ],
    }
    assert summary.counts()["ignored"] == 5
    # named explicitly, a hidden file is ingested
    named = ingest_summary(store, folder, folder / ".draft.md")
    assert (named.added, named.counts()["ignored"]) == ([str(folder / ".draft.md")], 4)


@pytest.mark.timeout(30)  # before, a link to a fifo went to read_bytes, which waits forever
def test_links_to_fifos_and_devices_are_not_regular_files(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    pipe = folder / ".pipe"
    folder.mkdir()
    (folder / "notes.md").write_text("Notes.\n")
    os.mkfifo(pipe)
    (folder / "pipe.txt").symlink_to(pipe)
    # a device was taken for a broken link and read: /dev/zero filled 24 GB before the OOM
    # killer stopped the ingest (QA); /dev/null shows it without the danger, and is now left
    # out before that, being outside the folder
    (folder / "null.txt").symlink_to("/dev/null")

    summary = ingest_summary(store, folder)

    assert summary.added == [str(folder / "notes.md")]
    assert summary.ignored_by_reason() == {
        "hidden": [str(pipe)],
        "not a regular file": [str(folder / "pipe.txt")],
        "symlink to outside the paths given": [str(folder / "null.txt")],
    }

    assert summary.failed == {}


@pytest.mark.timeout(30)  # before, opening the fifo waited forever for a writer
def test_a_fifo_named_as_a_path_fails_without_being_read(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    pipe = tmp_path / "pipe.md"
    os.mkfifo(pipe)

    summary = ingest_summary(store, pipe)

    assert summary.failed == {str(pipe): "not a regular file"}  # named once, beside it
    assert store.collections() == []


def test_a_broken_symlink_fails_under_its_own_name_and_its_old_chunks_go(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    target = folder / ".plans" / "plan.md"
    target.parent.mkdir(parents=True)
    target.write_text("Heron migration plan.\n")
    link = folder / "plan.md"
    link.symlink_to(target)
    (folder / "dangling.md").symlink_to("drafts/target.md")
    (folder / "gone").symlink_to("drafts")
    (folder / "knot.md").symlink_to("knot.md")  # a link to itself
    assert ingest_summary(store, folder).added == [str(link)]

    target.unlink()
    summary = ingest_summary(store, folder)

    assert summary.failed[str(folder / "dangling.md")] == (
        "broken symlink: its target drafts/target.md does not exist"
    )
    assert summary.failed[str(link)] == f"broken symlink: its target {target} does not exist"
    assert summary.failed[str(folder / "knot.md")] == "Too many levels of symbolic links"
    assert summary.ignored == {
        str(folder / ".plans"): "hidden",
        str(folder / "gone"): "broken symlink",
    }
    assert summary.removed == [str(link)]  # its document is gone
    assert store.collections() == []  # it was the only document: the collection went too


def index_rows(store: SqliteChunkStore) -> tuple[int, int]:
    """Rows in the FTS5 table and in the vector table (virtual tables: no cascades)."""
    fts = store._db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    vectors = store._db.execute("SELECT COUNT(*) FROM chunk_vectors").fetchone()[0]
    return int(fts), int(vectors)


def test_a_path_that_is_gone_takes_its_documents_and_then_the_collection(
    store: SqliteChunkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, single = tmp_path / "gone", tmp_path / "single.md"
    folder.mkdir()
    (folder / "memo.md").write_text("Secret memo about the merger.\n")
    (folder / "plan.txt").write_text("Secret plan for the merger.\n")
    single.write_text("Cafeteria opens at eight.\n")
    ingest(store, folder, single)
    shutil.rmtree(folder)
    single.unlink()

    def no_model() -> None:
        raise AssertionError("removing documents needs no embedder")

    monkeypatch.setattr("smallfirst.embed.get_embedder", no_model)
    summary = ingest_paths(store, [folder], collection="docs")  # the real embedder: unused

    gone = [str(folder / "memo.md"), str(folder / "plan.txt")]
    assert summary.gone == {str(folder): gone}
    assert (summary.removed, summary.collection_deleted) == (gone, False)
    assert sources(store, "secret merger") == []
    assert index_rows(store) == (1, 1)  # the cafeteria's chunk alone

    last = ingest_summary(store, single)
    assert last.gone == {str(single): [str(single)]}
    assert last.collection_deleted
    assert store.collections() == []  # no longer served as rag/docs
    assert index_rows(store) == (0, 0)
    with pytest.raises(InvalidRequest, match="path not found"):  # nothing left there now
        ingest(store, single)


def test_a_missing_path_holding_nothing_fails_before_anything_is_written(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    write_docs(tmp_path / "docs")
    with pytest.raises(InvalidRequest, match=f"path not found: {tmp_path / 'typo'}$"):
        ingest(store, tmp_path / "docs", tmp_path / "typo")
    assert store.collections() == []


def test_gone_paths_match_documents_stored_through_symlinks(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    (real / "team").mkdir(parents=True)
    (real / "team" / "otter.md").write_text("Otter onboarding notes.\n")
    (tmp_path / "alias").symlink_to(real)  # a linked folder above the path given
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "heron.md").write_text("Heron rota for the weekend.\n")
    linked_root = tmp_path / "linked_root"
    linked_root.symlink_to(shared)  # given itself: stored under its target
    holder = tmp_path / "holder"
    (holder / ".team").mkdir(parents=True)
    (holder / ".team" / "otter.md").write_text("Otter onboarding notes.\n")
    (holder / "kingfisher").symlink_to(".team")  # found in a walk: stored as the link
    ingest(store, tmp_path / "alias" / "team", linked_root)
    ingest(store, holder)
    assert sorted(store.document_hashes("docs")) == [
        str(holder / "kingfisher" / "otter.md"),
        str(real / "team" / "otter.md"),
        str(shared / "heron.md"),
    ]
    shutil.rmtree(real / "team")
    shutil.rmtree(shared)
    shutil.rmtree(holder / ".team")

    through_alias = ingest_summary(store, tmp_path / "alias" / "team")
    assert through_alias.removed == [str(real / "team" / "otter.md")]
    assert ingest_summary(store, linked_root).removed == [str(shared / "heron.md")]
    under_link = ingest_summary(store, holder / "kingfisher")  # a broken link now
    assert under_link.removed == [str(holder / "kingfisher" / "otter.md")]
    assert under_link.collection_deleted


def test_removing_the_last_document_deletes_the_collection(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_docs(folder)
    (folder / "empty.txt").write_text("")  # a document without chunks counts too
    ingest(store, folder)
    for name in ("cats.md", "dogs.txt", "page.html"):
        (folder / name).unlink()
    ingest(store, folder)
    assert [(c.name, c.documents, c.chunks) for c in store.collections()] == [("docs", 1, 0)]

    (folder / "empty.txt").unlink()
    summary = ingest_summary(store, folder)  # the folder is still there, empty
    assert (summary.removed, summary.collection_deleted) == ([str(folder / "empty.txt")], True)
    assert store.collections() == []
    with pytest.raises(CollectionNotFound):
        store.keyword_search("docs", "cats", 5)


def test_a_new_collection_with_a_bad_name_is_refused_before_anything_is_written(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    write_docs(tmp_path / "docs")
    with pytest.raises(InvalidRequest, match=r"invalid collection name 'rag/x'") as raised:
        ingest(store, tmp_path / "docs", collection="rag/x")
    assert raised.value.param == "collection"
    assert store.collections() == []
