"""What ingest reads and how it names it: links that leave the folder, serialised runs,
the extractor's version in the re-ingest decision, the name a citation shows."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from smallfirst.paths import exclusive_lock
from smallfirst.rag import Retriever, SqliteChunkStore
from smallfirst.rag.extract import EXTRACTOR_VERSIONS, extractor_version
from smallfirst.rag.ingest import content_hash
from tests.unit.rag_fakes import fake_embed_query
from tests.unit.test_rag_ingest import ingest_summary, sources

runner = CliRunner()


def test_links_that_lead_outside_the_paths_given_are_left_out_and_named(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder, home = tmp_path / "cloned_repo", tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY of the server's owner\n")
    (home / "notes").mkdir()
    (home / "notes" / "diary.md").write_text("Private diary entry.\n")
    folder.mkdir()
    (folder / "readme.md").write_text("How to build the project.\n")
    (folder / "notes.md").symlink_to(home / ".ssh" / "id_rsa")  # planted in a clone
    (folder / "more").symlink_to(home / "notes")
    (folder / "dangling.md").symlink_to(home / "gone.md")
    outside = "symlink to outside the paths given"

    summary = ingest_summary(store, folder)

    assert summary.added == [str(folder / "readme.md")]
    assert summary.ignored == {
        str(folder / "dangling.md"): outside,
        str(folder / "more"): outside,
        str(folder / "notes.md"): outside,
    }
    assert sources(store, "private key diary") == []
    # naming the place a link leads to lets it in (under its own path, as the link's target)
    named = ingest_summary(store, folder, home / "notes")
    assert named.added == [str(home / "notes" / "diary.md")]
    assert named.ignored[str(folder / "more")] == "folder already included"
    assert named.ignored[str(folder / "notes.md")] == outside


def test_a_document_ingested_through_an_outside_link_before_goes_on_the_next_ingest(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder, secret = tmp_path / "folder", tmp_path / "secret.md"
    folder.mkdir()
    secret.write_text("Root password hunter2.\n")
    (folder / "readme.md").write_text("Readme.\n")
    (folder / "secret.md").symlink_to(secret)
    # as an ingest that followed every link stored it
    store.put_document(
        "docs",
        str(folder / "secret.md"),
        title="secret.md",
        content_hash="",
        chunks=[],
        embeddings=np.zeros((0, 384), dtype=np.float32),
    )

    summary = ingest_summary(store, folder)

    assert summary.removed == [str(folder / "secret.md")]
    assert summary.ignored == {str(folder / "secret.md"): "symlink to outside the paths given"}


def test_a_document_is_cited_by_a_name_not_by_the_servers_path(
    store: SqliteChunkStore, tmp_path: Path
) -> None:
    folder, alone = tmp_path / "clients" / "acme" / "handbook", tmp_path / "memo.md"
    (folder / "kitchen").mkdir(parents=True)
    (folder / "kitchen" / "coffee.md").write_text("The coffee machine is descaled on Fridays.\n")
    (folder / "kitchen" / "tea.md").write_text("Green tea is in the upper coffee cupboard.\n")
    alone.write_text("Coffee budget memo.\n")

    ingest_summary(store, folder, folder / "kitchen" / "tea.md", alone)

    hits = Retriever(store, fake_embed_query).search("coffee", collection="docs", method="bm25")
    assert sorted(hit.name for hit in hits) == ["coffee.md", "memo.md", "tea.md"]  # `rag.names`
    assert sorted(hit.source for hit in hits) == sorted(  # still the document's id here
        [str(folder / "kitchen" / "coffee.md"), str(folder / "kitchen" / "tea.md"), str(alone)]
    )


def test_a_new_extractor_reads_its_kind_again_even_unchanged(
    store: SqliteChunkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "page.html").write_text("<p>Birds sing at dawn.</p>")
    (folder / "notes.md").write_text("Notes on birds.\n")
    assert ingest_summary(store, folder).skipped == []
    assert len(ingest_summary(store, folder).skipped) == 2

    monkeypatch.setitem(EXTRACTOR_VERSIONS, ".html", "html-better")
    again = ingest_summary(store, folder)

    assert (again.updated, again.skipped) == (
        [str(folder / "page.html")],
        [str(folder / "notes.md")],
    )
    assert len(ingest_summary(store, folder).skipped) == 2  # once only


@pytest.mark.timeout(120)
def test_an_ingest_waits_for_another_into_the_same_store_then_skips_what_it_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two at once both embedded every file and both said "added"."""
    from smallfirst.cli import rag as rag_cli

    folder, data = tmp_path / "docs", tmp_path / "data"
    folder.mkdir()
    notes = folder / "notes.md"
    notes.write_text("The gateway listens on port 8080.\n")
    data.mkdir()
    held, waiting = threading.Event(), threading.Event()
    real_lock = rag_cli.exclusive_lock

    def lock_telling_the_test(path: Path, on_wait: Callable[[], None]) -> Any:
        def wait() -> None:
            on_wait()
            waiting.set()

        return real_lock(path, wait)

    def first_ingest() -> None:
        with exclusive_lock(data / rag_cli.INGEST_LOCK, on_wait=lambda: None):
            held.set()
            waiting.wait(60)
            store = SqliteChunkStore(data / "rag.sqlite")
            store.put_document(
                "kb",
                str(notes),
                title="",
                content_hash=content_hash(notes.read_bytes(), extractor_version(notes)),
                chunks=[],
                embeddings=np.zeros((0, 384), dtype=np.float32),
            )
            store.close()

    monkeypatch.setattr(rag_cli, "exclusive_lock", lock_telling_the_test)
    first = threading.Thread(target=first_ingest)
    first.start()
    assert held.wait(60)
    # signal handlers can only be set in the main thread: the command runs here
    result = runner.invoke(
        rag_cli.app, ["ingest", str(folder), "-c", "kb", "--json", "--data-dir", str(data)]
    )
    first.join(60)

    assert result.exit_code == 0, result.output
    assert "waiting for another `smallfirst rag ingest` into" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["skipped"]) == (0, 1)


def test_ingest_tells_which_files_were_not_utf8_and_how_they_were_read(tmp_path: Path) -> None:
    """A legacy file's encoding is a guess: it was read silently (KOI8-R as Japanese)."""
    folder, data = tmp_path / "docs", ["--data-dir", str(tmp_path / "data")]
    folder.mkdir()
    (folder / "plain.md").write_text("Plain UTF-8 notes.\n")
    (folder / "lease.txt").write_bytes("Договор аренды квартиры.\n".encode("koi8_r"))
    (folder / "menu.txt").write_bytes("Crème brûlée, café.\n".encode("mac_roman"))
    from smallfirst.cli.rag import app

    shown = runner.invoke(app, ["ingest", str(folder), "-c", "kb", *data])
    (folder / "lease.txt").write_bytes("Договор аренды дома.\n".encode("koi8_r"))
    as_json = runner.invoke(app, ["ingest", str(folder), "-c", "kb", "--json", *data])

    assert shown.exit_code == 0, shown.output
    assert (
        f"not UTF-8, read as koi8_r (a guess: `rag search` shows the text) (1): "
        f"{folder / 'lease.txt'}" in shown.stdout
    )
    assert f"read as mac_roman (a guess: `rag search` shows the text) (1): {folder}" in (
        shown.stdout
    )
    assert json.loads(as_json.stdout)["guessed_encodings"] == {
        str(folder / "lease.txt"): "koi8_r"  # only what this run read
    }
