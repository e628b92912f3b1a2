"""Files and folders that cannot be read: each fails alone, and what they held is kept."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallfirst.rag import SqliteChunkStore
from tests.unit.rag_fakes import minimal_pdf
from tests.unit.test_rag_ingest import ingest_summary


def test_damaged_or_encrypted_pdfs_fail_alone(store: SqliteChunkStore, tmp_path: Path) -> None:
    """pypdf meets some damaged files with a ValueError or an AttributeError, not a
    PdfReadError: one such file in a folder stopped the whole ingest with a traceback."""
    from pypdf import PdfReader, PdfWriter

    folder = tmp_path / "pdfs"
    folder.mkdir()
    good = minimal_pdf("Photosynthesis happens in chloroplasts")
    (folder / "good.pdf").write_bytes(good)
    negative_offsets = re.sub(rb"\n0(\d{9}) 00000 n", rb"\n-\1 00000 n", good, count=2)
    (folder / "bad_offset.pdf").write_bytes(negative_offsets)
    (folder / "bad_trailer.pdf").write_bytes(good.replace(b"trailer\n<<", b"trailer\n1.5 <<"))
    locked = PdfWriter(clone_from=PdfReader(folder / "good.pdf"))
    locked.encrypt("secret")
    locked.write(folder / "locked.pdf")

    summary = ingest_summary(store, folder)

    assert summary.added == [str(folder / "good.pdf")]
    assert {Path(path).name for path in summary.failed} == {
        "bad_offset.pdf",
        "bad_trailer.pdf",
        "locked.pdf",
    }
    assert all(reason.startswith("cannot read the pdf") for reason in summary.failed.values())
    assert "encrypted" in summary.failed[str(folder / "locked.pdf")]


@pytest.mark.parametrize("unlisted", ["docs", "docs/sub"])
def test_documents_in_a_folder_that_cannot_be_listed_are_kept(
    store: SqliteChunkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unlisted: str
) -> None:
    """As for a file that cannot be read. Before, a folder whose permissions had changed
    lost its documents, and a root folder took the whole collection with it."""
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "top.txt").write_text("Top level notes.")
    (folder / "sub" / "inner.txt").write_text("Inner notes.")
    ingest_summary(store, folder)
    listable = os.scandir

    def scandir(path: Path) -> Iterator[os.DirEntry[str]]:
        if Path(path) == tmp_path / unlisted:
            raise PermissionError(13, "Permission denied", str(path))
        return listable(path)

    monkeypatch.setattr(os, "scandir", scandir)
    summary = ingest_summary(store, folder)

    assert summary.ignored == {str(tmp_path / unlisted): "unreadable folder"}
    assert summary.removed == []
    assert set(store.document_hashes("docs")) == {
        str(folder / "top.txt"),
        str(folder / "sub" / "inner.txt"),
    }


def test_a_path_that_cannot_be_looked_at_is_bad_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder above it denies access (`/home/other/notes`): a PermissionError's traceback
    before."""
    from typer.testing import CliRunner

    from smallfirst.cli.rag import app

    private = tmp_path / "private" / "notes"
    stat = os.stat

    def denying_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if Path(str(path)) == private:
            raise PermissionError(13, "Permission denied", str(path))
        return stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", denying_stat)
    data_dir = ["--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(app, ["ingest", str(private), "-c", "notes", *data_dir])

    assert result.exit_code == 2, result.output
    assert f"cannot look at {private}: Permission denied" in result.output
