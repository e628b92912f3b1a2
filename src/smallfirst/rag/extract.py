"""Turn a file into plain text: txt and md as Python reads them in text mode (UTF-8, else
the encoding charset-normalizer finds; universal newlines; no byte-order mark), html via
selectolax, pdf via pypdf.

HTML headings become markdown headings (`## Title`) and table rows lines of cells joined by
" | ", so one chunker handles both; spans of html and pdf chunks therefore refer to the
extracted text, not to the raw file bytes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.errors import InvalidRequest
from smallfirst.rag.front_matter import front_matter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pypdf import PageObject
    from selectolax.lexbor import LexborNode

# What each kind's extraction makes of the same bytes, part of the content hash: bump one when
# its text changes, and the next ingest reads the files of that kind again, unchanged or not
# (a better extractor only reached files edited since, before 2026-12-07).
EXTRACTOR_VERSIONS = {
    ".txt": "text-2",  # lone CRs end lines; legacy 8-bit encodings
    ".md": "markdown-2",  # front matter; as for text
    ".html": "html-2",  # table rows, text outside blocks, <br>
    ".pdf": "",  # as first shipped
}
_KINDS = {".text": ".txt", ".markdown": ".md", ".htm": ".html"}
SUPPORTED_SUFFIXES = frozenset({*EXTRACTOR_VERSIONS, *_KINDS})


def extractor_version(path: Path) -> str:
    suffix = path.suffix.lower()
    return EXTRACTOR_VERSIONS[_KINDS.get(suffix, suffix)]


_BLOCK_TAGS = (
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "li",
    "pre",
    "blockquote",
    "tr",  # a row is one line, its cells joined: "Paris | 210 EUR" keeps what each cell means
    "dt",
    "dd",
    "figcaption",
    "caption",
)
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_CELL_TAGS = ("td", "th")
CELL_SEPARATOR = " | "
# Text in these runs on in the line around them; any other element outside a block (div,
# section, a custom element) starts a paragraph of its own.
_INLINE_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font", "i",
    "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup",
    "time", "tt", "u", "var", "wbr",
})  # fmt: skip
_SKIPPED_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "footer", "head")


@dataclass(frozen=True)
class ExtractedDocument:
    text: str
    title: str
    markdown: bool  # whether `#` headings in `text` are structure
    body_start: int = 0  # where the text to chunk begins: after a Markdown file's front matter
    encoding: str = "utf-8"  # how the file's bytes were read ("" for a pdf): a guess unless UTF-8


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def extract(path: Path, raw: bytes) -> ExtractedDocument:
    """Plain text of `raw`, the contents of `path`, chosen by the file suffix."""
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        text, encoding = _decode(raw)
        body_start, title = front_matter(text)
        return ExtractedDocument(text, title, True, body_start, encoding)
    if suffix in (".txt", ".text"):
        text, encoding = _decode(raw)
        return ExtractedDocument(text, "", markdown=False, encoding=encoding)
    if suffix in (".html", ".htm"):
        text, encoding = _decode(raw)
        page = html_to_text(text)
        return ExtractedDocument(page.text, page.title, page.markdown, encoding=encoding)
    if suffix == ".pdf":
        return pdf_to_text(raw)
    raise InvalidRequest(f"unsupported file type {suffix!r}")


def _decode(raw: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with: UTF-8 as most files are; otherwise the
    encoding charset-normalizer finds (UTF-16 from Windows editors, cp1252, ...), so a legacy
    file is not ingested as replacement marks. A file no text encoding explains (or that
    holds NUL characters) is refused rather than indexed as noise."""
    text, encoding = _utf8(raw), "utf-8"
    if text is None or "\x00" in text:  # NULs: also UTF-16 without a byte-order mark
        text, encoding = _detected_text(raw)
    if text is None or "\x00" in text:
        raise InvalidRequest("not a text file (binary content)")
    # Universal newlines, as Python's text mode reads the file: chunk spans index the text
    # that `open(path, encoding=...).read()` returns, and a lone CR (old Mac files) ends a
    # line, so blank lines between paragraphs are seen. Each replacement keeps or shortens
    # a line break only, never the text around it.
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _detected_text(raw: bytes) -> tuple[str | None, str]:
    """Western European text in cp1252 (Latin-1's superset) or Mac-Roman when it reads as
    such, else the decoding charset-normalizer finds most plausible, if any. Among equally
    plausible ones (short Western text fits cp1250 as well as cp1252), the most used legacy
    encoding wins, and a one-byte Cyrillic one over any other: charset-normalizer read short
    KOI8-R text ("Привет мир") as Japanese, which its byte pairs also spell without fault."""
    from charset_normalizer import from_bytes

    western = [
        (text, encoding)
        for encoding in _WESTERN_ENCODINGS
        if (text := _western_text(raw, encoding)) is not None
    ]
    if western:  # charset-normalizer read short ones as cp1006, big5, UTF-16...
        return min(western, key=lambda read: _misshapen_words(read[0]))
    matches = from_bytes(raw)
    best = matches.best()
    cyrillic = from_bytes(raw, cp_isolation=list(_CYRILLIC_ENCODINGS)).best()
    if cyrillic is not None and (best is None or cyrillic.chaos <= best.chaos):
        return str(cyrillic), cyrillic.encoding
    if best is None:
        return None, ""
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    chosen = next((m for m in tied if m.encoding == "cp1252"), best)
    return str(chosen), chosen.encoding


# The one-byte encodings of Western text, most used first (ties go to the first), and of
# Cyrillic text: Windows, Unix (KOI8-R, KOI8-U), DOS, classic Mac.
_WESTERN_ENCODINGS = ("cp1252", "mac_roman")
_CYRILLIC_ENCODINGS = ("cp1251", "koi8_r", "koi8_u", "cp866", "mac_cyrillic")


_EDGE_MARKS = re.compile(r"^[^\w]+|[^\w]+$")


def _misshapen_words(text: str) -> int:
    """Words with letters outside ASCII that no writer spells so: a mark inside a word
    ("Gr\u0178\u00a7e") or a capital after a small letter ("Caf\u017d"), as Mac-Roman's
    "Grüße" and "Café" read in cp1252 (and cp1252's in Mac-Roman: "Caf\u00c8")."""
    misshapen = 0
    for word in text.split():
        core = _EDGE_MARKS.sub("", word)  # quotes and stops around a word are no part of it
        if core.isascii():
            continue
        if not core.isalpha() or not (core.islower() or core.isupper() or core.istitle()):
            misshapen += 1
    return misshapen


# Besides Latin letters, what Western text holds in cp1252's upper half.
_WESTERN_MARKS = frozenset("€‘’‚“”„–—…•«»£¥°©®™§¶·¡¿×÷±½¼¾ºª\u00a0")
# In Western text accented letters are a few among plain ones ("Café", "Straße"); a text of
# them all is another script in a one-byte encoding (cp1251 Russian reads "Ïðèâåò").
_MOST_ACCENTED_SHARE = 0.3


def _western_text(raw: bytes, encoding: str) -> str | None:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        return None
    if any(c < " " and c not in "\t\n\r\f" for c in text):  # UTF-16 without a BOM, binary
        return None
    letters = [c for c in text if c.isalpha()]
    accented = [c for c in letters if not c.isascii()]
    others = [c for c in text if not c.isascii() and not c.isalpha()]
    if any(c not in _WESTERN_MARKS for c in others) or any(ord(c) > 0x17F for c in accented):
        return None
    return text if len(accented) <= _MOST_ACCENTED_SHARE * len(letters) else None


# A line break, and the start or end of a block or cell, part the words around it: a block
# inside another ("<td><p>a</p><p>b</p></td>", a table in a list item) or "Main St
# 5<br>Springfield" read as one glued word ("5Springfield") before.
_BREAKS_BETWEEN_BLOCKS = re.compile(
    r"<br\s*/?>|</?(?:p|div|li|ul|ol|td|th|tr|h[1-6]|blockquote|dt|dd|caption|table)\b[^>]*>",
    re.IGNORECASE,
)


def _break_after(match: re.Match[str]) -> str:
    tag = match.group()
    return "\n" if tag[1:3].lower() == "br" else f" {tag} "


# Block containers, open until closed. Opening one scans the elements open around it (HTML's
# "close a p element in button scope"), so lexbor's time grows with the square of their
# nesting: 100,000 nested divs (a 1.1 MB page) took 44 s, 40,000 took 5.5 s. Past the depth
# Chrome builds (512), their tags are dropped for a space: the text stays, as one paragraph.
_CONTAINER_TAG = re.compile(
    r"<(/?)(?:div|section|article|aside|main|header|footer|nav|blockquote|ul|ol|dl|menu|dir"
    r"|fieldset|figure|figcaption|details|summary|dialog|address|center|hgroup|search)\b[^>]*>",
    re.IGNORECASE,
)
MOST_NESTED_CONTAINERS = 512


def _nesting_capped(html: str) -> str:
    depth = dropped = 0

    def capped(tag: re.Match[str]) -> str:
        nonlocal depth, dropped
        if tag.group(1):  # a closing tag: its opening one's fate
            if dropped:
                dropped -= 1
                return " "
            depth = max(depth - 1, 0)
        elif depth >= MOST_NESTED_CONTAINERS:
            dropped += 1
            return " "
        else:
            depth += 1
        return tag.group()

    return _CONTAINER_TAG.sub(capped, html)


def html_to_text(html: str) -> ExtractedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_BREAKS_BETWEEN_BLOCKS.sub(_break_after, _nesting_capped(html)))
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    tree.strip_tags(list(_SKIPPED_TAGS))
    root = tree.body or tree.root
    blocks = _html_blocks(root) if root is not None else []
    return ExtractedDocument("\n\n".join(blocks), title, markdown=True)


def _html_blocks(root: LexborNode) -> list[str]:
    """The text under `root` as paragraphs, in document order: each block element's, and the
    text outside them (in a div, a section, the body itself), parted where an element that is
    not inline starts or ends. Before, a page with one `p` lost the text of all its divs."""
    blocks: list[str] = []
    loose: list[str] = []

    def end_paragraph() -> None:
        text = " ".join("".join(loose).split())
        loose.clear()
        if text:
            blocks.append(text)

    pending: list[LexborNode | None] = [root]  # None: the end of an element that parts text
    while pending:  # a loop, not recursion: pages nest divs thousands deep
        node = pending.pop()
        if node is None:
            end_paragraph()
        elif node.is_text_node:
            loose.append(node.text_content or "")
        elif node.tag in _BLOCK_TAGS:
            end_paragraph()
            if text := _block_text(node):
                blocks.append(text)
        elif node.is_element_node:
            if node.tag not in _INLINE_TAGS:
                end_paragraph()
                pending.append(None)
            pending.extend(reversed(list(node.iter(include_text=True))))
    end_paragraph()
    return blocks


def _block_text(node: LexborNode) -> str:
    """A block as one line of markdown-ish text (a `pre` keeps its lines); "" if it has none."""
    if node.tag == "pre":
        code = node.text()
        return code.strip("\n") if code.strip() else ""
    if node.tag == "tr":  # empty cells are kept, so that each value stays under its column
        cells = [_one_line(cell) for cell in node.iter() if cell.tag in _CELL_TAGS]
        return CELL_SEPARATOR.join(cells).strip() if any(cells) else ""
    text = _one_line(node)
    if not text:
        return ""
    if node.tag in _HEADING_TAGS:
        return "#" * int(node.tag[1]) + " " + text
    return "- " + text if node.tag == "li" else text


def _one_line(node: LexborNode) -> str:
    return " ".join(node.text(separator="").split())


# Text a pdf may hold per byte of file, past a floor. Text pdfs hold a few characters per byte
# (compressed text and fonts); one that holds more repeats a stream that inflates without end
# (a 13 kB file whose pages share one 4 MB stream gave 1.1 million characters a page, 8.5 s
# each: a thousand such pages would fill the memory, in hours).
MOST_PDF_TEXT_PER_BYTE = 100
PDF_TEXT_FLOOR = 1_000_000


class _PdfBomb(Exception):
    pass


def pdf_to_text(raw: bytes) -> ExtractedDocument:
    import io

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    # pypdf logs what it repairs or gives up on; a failure is reported once, below
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    most = max(PDF_TEXT_FLOOR, MOST_PDF_TEXT_PER_BYTE * len(raw))
    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = _pages_text(reader.pages, most)
        title = str(reader.metadata.title or "") if reader.metadata is not None else ""
    except _PdfBomb as exc:
        raise InvalidRequest(
            f"cannot read the pdf: its text passed {most:,} characters at page {exc} of a "
            f"{len(raw):,}-byte file (a compressed stream that inflates without end?)"
        ) from None
    except FileNotDecryptedError as exc:
        raise InvalidRequest("cannot read the pdf: it is encrypted with a password") from exc
    except PdfReadError as exc:
        raise InvalidRequest(f"cannot read the pdf: {exc}") from exc
    except Exception as exc:  # pypdf fails on some damaged files with any error (ValueError...)
        raise InvalidRequest(f"cannot read the pdf, it looks damaged: {exc!r}") from exc
    return ExtractedDocument("\n\n".join(p.strip() for p in pages if p.strip()), title, False)


def _pages_text(pages: Iterable[PageObject], most: int) -> list[str]:
    """Each page's text; `_PdfBomb` (the page number) once they pass `most` characters."""
    texts: list[str] = []
    held = 0
    for number, page in enumerate(pages, start=1):
        texts.append(page.extract_text() or "")
        held += len(texts[-1])
        if held > most:
            raise _PdfBomb(number)
    return texts
