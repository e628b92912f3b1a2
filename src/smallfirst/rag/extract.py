"""Turn a file into plain text: txt and md as they are, html via selectolax, pdf via pypdf.

HTML headings become markdown headings (`## Title`) so one chunker handles both; spans of
html and pdf chunks therefore refer to the extracted text, not to the raw file bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.errors import InvalidRequest

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

SUPPORTED_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"})

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
    "td",
    "th",
    "dt",
    "dd",
    "figcaption",
    "caption",
)
_SKIPPED_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "footer", "head")


@dataclass(frozen=True)
class ExtractedDocument:
    text: str
    title: str
    markdown: bool  # whether `#` headings in `text` are structure


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def extract(path: Path, raw: bytes) -> ExtractedDocument:
    """Plain text of `raw`, the contents of `path`, chosen by the file suffix."""
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return ExtractedDocument(_decode(raw), "", markdown=True)
    if suffix in (".txt", ".text"):
        return ExtractedDocument(_decode(raw), "", markdown=False)
    if suffix in (".html", ".htm"):
        return html_to_text(_decode(raw))
    if suffix == ".pdf":
        return pdf_to_text(raw, path)
    raise InvalidRequest(f"unsupported file type {suffix!r}: {path}")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8-sig", errors="replace").replace("\r\n", "\n")


def html_to_text(html: str) -> ExtractedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    tree.strip_tags(list(_SKIPPED_TAGS))
    root = tree.body or tree.root
    blocks: list[str] = []
    if root is not None:
        for node in root.css(",".join(_BLOCK_TAGS)):
            if _has_block_ancestor(node):
                continue  # its text is already part of the enclosing block
            text = node.text(separator="") if node.tag != "pre" else node.text()
            text = text if node.tag == "pre" else " ".join(text.split())
            if not text.strip():
                continue
            if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                text = "#" * int(node.tag[1]) + " " + text.replace("\n", " ")
            elif node.tag == "li":
                text = "- " + text
            blocks.append(text.strip("\n"))
    if not blocks and root is not None:
        blocks = [" ".join(root.text(separator=" ").split())]
    return ExtractedDocument("\n\n".join(blocks), title, markdown=True)


def _has_block_ancestor(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in _BLOCK_TAGS:
            return True
        parent = parent.parent
    return False


def pdf_to_text(raw: bytes, path: Path) -> ExtractedDocument:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.title or "") if reader.metadata is not None else ""
    except PdfReadError as exc:
        raise InvalidRequest(f"cannot read pdf {path}: {exc}") from exc
    return ExtractedDocument("\n\n".join(p.strip() for p in pages if p.strip()), title, False)
