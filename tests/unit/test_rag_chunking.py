from __future__ import annotations

from pathlib import Path

import pytest

from smallfirst.rag.chunking import chunk_text
from smallfirst.rag.extract import extract
from tests.unit.rag_fakes import count_words, minimal_pdf

GUIDE = """# Guide

Intro paragraph about the tool.

## Install

Run the installer.
It takes a minute.

Second install paragraph.

### Linux

Use the package manager.

```
code block

still code
```

## Usage

Call it.
"""


def test_chunks_follow_headings_and_map_back_to_the_source() -> None:
    chunks = chunk_text(GUIDE, count_tokens=count_words, markdown=True)

    assert [c.heading for c in chunks] == [
        "Guide",
        "Guide > Install",
        "Guide > Install > Linux",
        "Guide > Usage",
    ]
    for chunk in chunks:
        assert GUIDE[chunk.char_start : chunk.char_end] == chunk.text
        assert not chunk.text.startswith("#")  # the heading line is context, not body
    install = chunks[1]
    assert "Run the installer." in install.text
    assert "Second install paragraph." in install.text
    assert "code block\n\nstill code" in chunks[2].text  # a fenced block is never split


def test_headings_in_plain_text_are_not_structure() -> None:
    chunks = chunk_text("# not a heading\n\nbody", count_tokens=count_words, title="notes")
    assert [(c.heading, c.text) for c in chunks] == [("notes", "# not a heading\n\nbody")]


def test_long_paragraphs_split_on_sentences_within_the_token_limit() -> None:
    sentences = [f"Sentence number {i} says something about topic {i}." for i in range(60)]
    source = "# Title\n\n" + " ".join(sentences) + "\n\nA short closing paragraph.\n"

    chunks = chunk_text(source, count_tokens=count_words, max_tokens=40, markdown=True)

    assert len(chunks) > 5
    for chunk in chunks:
        assert count_words(chunk.embedding_text) <= 40
        assert source[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text.endswith(".")  # cut between sentences, not inside one
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)


def test_one_giant_word_is_still_cut_to_fit() -> None:
    source = "x" * 5000
    chunks = chunk_text(source, count_tokens=lambda t: len(t) // 10 + 2, max_tokens=50)
    assert "".join(c.text for c in chunks) == source
    assert all(len(c.text) // 10 + 2 <= 50 for c in chunks)


def test_html_headings_and_paragraphs_are_extracted_without_scripts() -> None:
    html = (
        "<html><head><title>Page</title><script>var x = 1;</script></head><body>"
        "<h1>Top</h1><p>First <b>para</b>.</p><nav>menu</nav><h2>Sub</h2><ul><li>item one</li>"
        "</ul><p>Last.</p></body></html>"
    )
    document = extract(Path("page.html"), html.encode())

    assert document.title == "Page"
    assert "var x" not in document.text
    assert "menu" not in document.text
    chunks = chunk_text(document.text, count_tokens=count_words, markdown=True)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Top", "First para."),
        ("Top > Sub", "- item one\n\nLast."),
    ]


def test_pdf_text_is_extracted() -> None:
    document = extract(Path("tiny.pdf"), minimal_pdf("Photosynthesis happens in chloroplasts"))
    assert "Photosynthesis happens in chloroplasts" in document.text


def test_html_table_rows_keep_their_cells_together() -> None:
    """Before, "City", "Hotel cap", "Paris", "210 EUR" were four paragraphs."""
    html = (
        "<h2>Travel caps</h2><table><caption>Hotel caps</caption><thead><tr><th>City</th>"
        "<th>Hotel cap</th><th>Note</th></tr></thead><tbody><tr><td>Paris</td>"
        "<td><b>210</b> EUR</td><td></td></tr><tr><td></td><td></td><td></td></tr>"
        "<tr><td>Rome</td><td>180 EUR</td><td><p>near <i>Termini</i></p></td></tr></tbody></table>"
    )
    document = extract(Path("caps.html"), html.encode())
    assert document.text == (
        "## Travel caps\n\nHotel caps\n\nCity | Hotel cap | Note\n\nParis | 210 EUR |\n\n"
        "Rome | 180 EUR | near Termini"
    )
    chunks = chunk_text(document.text, count_tokens=count_words, markdown=True)
    assert [c.text for c in chunks] == [document.text.split("\n\n", 1)[1]]
    assert all(document.text[c.char_start : c.char_end] == c.text for c in chunks)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("bom.md", "\ufeff# BOM doc\n\nThe bommarker paragraph.\n".encode()),
        (
            "crlf.md",
            b"# Title\r\n\r\n## Section\r\n\r\nFirst crlfalpha.\r\n\r\nSecond crlfbeta.\r\n",
        ),
        ("mac.txt", b"Line one classicmac.\rLine two.\r\rSecond para macpara.\r"),
        ("mixed.txt", b"One.\r\nTwo.\r\rThree macpara.\n\nFour.\r"),
        ("windows.txt", "Zoë wrote\r\n\r\nthe café macpara.".encode("utf-16")),
    ],
)
def test_spans_index_the_file_as_python_reads_it_in_text_mode(
    tmp_path: Path, name: str, written: bytes
) -> None:
    """Before, a lone CR stayed in the text as written."""
    (tmp_path / name).write_bytes(written)
    encoding = "utf-16" if name == "windows.txt" else "utf-8-sig"
    as_read = (tmp_path / name).read_text(encoding=encoding)  # universal newlines
    document = extract(tmp_path / name, written)
    assert document.text == as_read
    assert "\r" not in document.text
    assert "\ufeff" not in document.text
    chunks = chunk_text(document.text, count_tokens=count_words, markdown=True)
    assert chunks
    for chunk in chunks:
        assert as_read[chunk.char_start : chunk.char_end] == chunk.text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Main St 5<br>Springfield</p>", "Main St 5 Springfield"),
        ("<table><tr><td><p>one</p><p>two</p></td><td>Tel<br/>+1 555</td></tr></table>",
         "one two | Tel +1 555"),
        ("<ul><li>Rates<table><tr><td>x</td><td>y</td></tr></table></li></ul>", "- Rates x y"),
        ("<table><tr><td>A</td><td><table><tr><td>b1</td><td>b2</td></tr></table></td></tr>"
         "</table>", "A | b1 b2"),
    ],
)  # fmt: skip
def test_html_breaks_and_blocks_inside_blocks_part_words(html: str, text: str) -> None:
    """They were glued: "5Springfield", "onetwo", "Ratesxy"."""
    assert extract(Path("page.html"), html.encode()).text == text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café au lait.\n", "latin-1"),
        ("Año nuevo, vida nueva.", "latin-1"),
        ("Straße 12", "latin-1"),
        ("5€ pro Stück", "cp1252"),
        ("Привет, мир! Как дела?", "cp1251"),
        ("Zażółć gęślą jaźń", "cp1250"),
        ("Grüße aus München, das Büro öffnet um neun.", "mac_roman"),  # was "GrŸ§e aus MŸnchen"
        ("Résumé: the café opens at 8.", "mac_roman"),  # was "RŽsumŽ"
        ("Price: 5 € — “quoted” text… and ‘single’ ones", "mac_roman"),
        ("Price: 5 € — “quoted” text… and ‘single’ ones", "cp1252"),
        ("Привет мир. Как дела?", "koi8_r"),  # was Japanese: "崹ﾉﾗﾅﾔ ﾍﾉﾒ. 步ﾋ ﾄﾅﾌﾁ?"
        ("Договор аренды квартиры. Арендатор обязуется платить вовремя.", "koi8_r"),
        ("Добрий день! Як справи? Ціна: 100 гривень.", "koi8_u"),  # was Thai
        ("Привет", "cp1251"),  # was Chinese
    ],
)
def test_short_legacy_text_is_read_in_its_own_script(text: str, encoding: str) -> None:
    """Short Latin-1 files read as cp1006, big5 or UTF-16 ("Cafﻠ au lait."); the encoding
    guessed is told (ingest names it), and Latin-1 is read as its superset cp1252."""
    read = extract(Path("note.txt"), text.encode(encoding))
    assert (read.text, read.encoding) == (text, encoding.replace("latin-1", "cp1252"))


def test_html_text_outside_block_elements_is_kept() -> None:
    """Before, a page with one heading or paragraph lost the text of its divs and sections."""
    html = (
        "<body>Welcome text.<h1>Refunds</h1><div class='content'>Refunds take <b>five</b> "
        "days.<div>Ask the <a href='/desk'>help desk</a> first.</div>Keep the receipt.</div>"
        "<section>Card refunds go to the card.</section><p>Last paragraph.</p></body>"
    )
    assert extract(Path("page.html"), html.encode()).text == (
        "Welcome text.\n\n# Refunds\n\nRefunds take five days.\n\nAsk the help desk first.\n\n"
        "Keep the receipt.\n\nCard refunds go to the card.\n\nLast paragraph."
    )


def test_one_enormous_word_is_cut_reading_its_text_a_few_times_only() -> None:
    """A base64 blob in a text file: halving it counted the whole word's tokens again at each
    of ~10 levels (400 kB took 68 s); it is now cut into as many pieces as its tokens need."""
    blob = "QUJD" * 25_000  # 100,000 characters, no space or sentence end
    read: list[int] = []

    def four_characters_a_token(text: str) -> int:
        read.append(len(text))
        return -(-len(text) // 4) + 2  # with [CLS] and [SEP], as the encoder counts

    chunks = chunk_text(blob, count_tokens=four_characters_a_token, max_tokens=256)
    assert "".join(blob[c.char_start : c.char_end] for c in chunks) == blob
    assert all(four_characters_a_token(c.embedding_text) <= 256 for c in chunks)
    assert sum(read) < 6 * len(blob)


def test_front_matter_names_the_document_and_is_not_searched(tmp_path: Path) -> None:
    """Jekyll/Hugo/Obsidian metadata was indexed as a chunk of text, and its title unused."""
    text = "---\ntitle: Refund policy\ntags: [billing]\n---\n\n# Refunds\n\nFive business days.\n"
    document = extract(tmp_path / "refunds.md", text.encode())
    assert document.title == "Refund policy"
    chunks = chunk_text(
        document.text,
        count_tokens=count_words,
        markdown=True,
        title=document.title,
        start=document.body_start,
    )
    assert [(c.heading, c.text) for c in chunks] == [
        ("Refund policy > Refunds", "Five business days.")
    ]
    assert text[chunks[0].char_start : chunks[0].char_end] == "Five business days."
    # a thematic break first, or a block that is no YAML mapping, is text
    for plain in ("---\n\nJust text.\n", "---\nnot: [yaml\n---\nText.\n"):
        kept = extract(tmp_path / "p.md", plain.encode())
        assert (kept.title, kept.body_start) == ("", 0)


def test_setext_headings_are_headings() -> None:
    """`Title` over `===` (and `---`) read as a paragraph of its own, the underline with it."""
    text = "Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun it.\n"
    chunks = chunk_text(text, count_tokens=count_words, markdown=True)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Guide", "Intro."),
        ("Guide > Install", "Run it."),
    ]
