"""Files a user did not write (a downloaded archive, a cloned repo) each fail or are left out
alone, by name: none stops the ingest of the folder around it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli.rag import app
from smallfirst.rag import SqliteChunkStore
from smallfirst.rag import extract as extraction
from smallfirst.rag.ingest import HIDDEN
from tests.unit.rag_fakes import minimal_pdf, pdf_of
from tests.unit.test_rag_ingest import ingest_summary, sources

NAME_NOT_UTF8 = "name is not valid UTF-8"


@pytest.fixture
def latin1_names(tmp_path: Path) -> Path:
    """A folder unpacked from an old archive: names in Latin-1, not UTF-8."""
    folder = tmp_path / "unpacked"
    folder.mkdir()
    (folder / "cafe.md").write_text("Espresso needs nine bar of pressure.\n")
    Path(os.fsdecode(bytes(folder) + b"/men\xfa.md")).write_text("Soup of the day.\n")
    Path(os.fsdecode(bytes(folder) + b"/.caf\xe9")).mkdir()
    return folder


def test_a_name_that_is_not_utf8_is_left_out_by_name_and_the_rest_is_ingested(
    store: SqliteChunkStore, latin1_names: Path
) -> None:
    """SQLite takes UTF-8 text only: such a name stopped the whole ingest with a
    UnicodeEncodeError, after the files sorted before it."""
    summary = ingest_summary(store, latin1_names)

    assert summary.added == [str(latin1_names / "cafe.md")]
    assert summary.ignored == {
        f"{latin1_names}/men\\xfa.md": NAME_NOT_UTF8,
        f"{latin1_names}/.caf\\xe9": HIDDEN,
    }
    assert sources(store, "espresso pressure") == [str(latin1_names / "cafe.md")]


def test_the_cli_prints_such_names_with_their_bytes_escaped(
    latin1_names: Path, tmp_path: Path
) -> None:
    args = ["ingest", str(latin1_names), "-c", "kb", "-v", "--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "1 added, 0 updated, 0 unchanged, 0 removed, 0 failed, 2 ignored" in result.stdout
    assert f"ignored, {NAME_NOT_UTF8} (1):\n    {latin1_names}/men\\xfa.md" in result.stdout


runner = CliRunner()


def test_a_file_without_text_is_told_why_by_its_kind(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "heading.md").write_text("# Only a heading\n", encoding="utf-8")
    (tmp_path / "docs" / "scan.pdf").write_bytes(minimal_pdf(""))
    args = ["ingest", str(tmp_path / "docs"), "-c", "kb", "--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    heading, scan = tmp_path / "docs" / "heading.md", tmp_path / "docs" / "scan.pdf"
    assert f"no text found (empty, or headings and markup only): {heading}" in result.stdout
    assert f"no text found (a PDF of scanned pages? OCR it first): {scan}" in result.stdout


@pytest.mark.parametrize(
    "front_matter",
    [
        "a: " + "[" * 600 + "]" * 600,  # RecursionError in PyYAML's composer
        "title: " + "1" * 5000,  # ValueError: more digits than int() takes from text
        "date: 2024-13-45",  # ValueError: month must be in 1..12
    ],
    ids=["nested", "long-number", "bad-date"],
)
def test_front_matter_yaml_cannot_read_stays_text_and_stops_nothing(
    store: SqliteChunkStore, tmp_path: Path, front_matter: str
) -> None:
    """Each of these is a 1-5 kB Markdown file that stopped the whole ingest with a
    traceback from PyYAML."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "a_hostile.md").write_text(f"---\n{front_matter}\n---\nThe kettle whistles.\n")
    (folder / "b_plain.md").write_text("The toaster pops.\n")

    summary = ingest_summary(store, folder)

    assert sorted(Path(p).name for p in summary.added) == ["a_hostile.md", "b_plain.md"]
    assert summary.failed == {}
    assert sources(store, "kettle whistles") == [str(folder / "a_hostile.md")]


def pages_sharing_one_stream(pages: int, stream: bytes) -> bytes:
    """A pdf whose `pages` all show one Flate-compressed content stream: tiny on disk,
    `pages` times the stream's text when read."""
    packed = zlib.compress(stream, 9)
    first_page = 5
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream",
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    ] * pages
    return pdf_of(objects)


def test_a_pdf_whose_text_inflates_far_past_its_size_fails_alone(
    store: SqliteChunkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages sharing one compressed stream: 13 kB of file gave 1.1 million characters a
    page, read at 8.5 s a page, so a thousand pages would have filled the memory in hours.
    (The floor is lowered here to keep the test quick: the stream is smaller.)"""
    monkeypatch.setattr(extraction, "PDF_TEXT_FLOOR", 100_000)
    folder = tmp_path / "mail"
    folder.mkdir()
    line = b"BT /F1 12 Tf 72 720 Td (hello world) Tj ET\n"  # 11 characters of text
    bomb = pages_sharing_one_stream(5, line * 5000)  # the limit is passed at page 4
    (folder / "invoice.pdf").write_bytes(bomb)
    (folder / "paper.pdf").write_bytes(minimal_pdf("Quantization shrinks models to four bits"))
    assert len(bomb) < 5_000

    summary = ingest_summary(store, folder)

    assert summary.added == [str(folder / "paper.pdf")]
    most = 100 * len(bomb)
    assert summary.failed == {
        str(folder / "invoice.pdf"): f"cannot read the pdf: its text passed {most:,} characters "
        f"at page {most // 55_000 + 1} of a {len(bomb):,}-byte file (a compressed stream that "
        "inflates without end?)"
    }


def test_divs_nested_past_chromes_depth_are_read_flat() -> None:
    """Each div opened scans the elements open around it, so lexbor's time grew with the
    square of the nesting: 100,000 nested divs (a 1.1 MB page) took 44 s to parse. Past 512
    (the depth Chrome builds) the tags go and the text stays."""
    depth = 20_000
    page = "<body>" + "<div><span>a</span>" * depth + "<p>deep</p>" + "</div>" * depth + "</body>"
    read = extraction.html_to_text(page)
    assert read.text.split() == ["a"] * depth + ["deep"]
    assert read.text.endswith("\n\ndeep")
    capped = extraction._nesting_capped(page)
    assert capped.count("<div>") == capped.count("</div>") == extraction.MOST_NESTED_CONTAINERS
    assert (
        extraction._nesting_capped("<div><p>x</p></div>" * depth) == "<div><p>x</p></div>" * depth
    )
