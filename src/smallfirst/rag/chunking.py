"""Split extracted text into chunks that fit the embedder, following headings and paragraphs.

Every chunk keeps the character span it came from: `source[chunk.char_start:chunk.char_end]
== chunk.text`, and the heading path above it (e.g. "Guide > Install > Linux") as context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HEADING_SEPARATOR = " > "
MAX_HEADING_CHARS = 200  # a runaway heading must not eat the chunk's token budget

_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=|-)\1*[ \t]*$")  # under a paragraph: `Title` over `===`
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD_GAP = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    char_start: int
    char_end: int
    ordinal: int

    @property
    def embedding_text(self) -> str:
        return embedding_text(self.heading, self.text)


def embedding_text(heading: str, text: str) -> str:
    """What the embedder sees: the heading path as context, then the chunk."""
    heading = heading[:MAX_HEADING_CHARS]
    return f"{heading}\n{text}" if heading else text


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    heading: str


def chunk_text(
    source: str,
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    target_tokens: int = 200,
    markdown: bool = False,
    title: str = "",
    start: int = 0,
) -> list[Chunk]:
    """Chunks of `source[start:]`, each with `count_tokens(embedding_text) <= max_tokens`.

    `count_tokens` counts a whole model input (special tokens included). `markdown` turns on
    ATX and setext headings; `title` is the root of every heading path.
    """
    chunks: list[Chunk] = []
    blocks = list(_blocks(source, markdown=markdown, title=title, start=start))
    for heading, group in _group_by_heading(blocks):
        overhead = count_tokens(embedding_text(heading, "")) if heading else 2
        budget = max(16, min(target_tokens, max_tokens) - overhead)
        pieces = [p for b in group for p in _fit(source, b.start, b.end, budget, count_tokens)]
        for start, end in _pack(source, pieces, budget, count_tokens):
            for s, e in _verified(source, start, end, heading, max_tokens, count_tokens):
                chunks.append(Chunk(source[s:e], heading, s, e, len(chunks)))
    return chunks


def _blocks(source: str, *, markdown: bool, title: str, start: int = 0) -> Iterator[_Block]:
    """Paragraphs (runs of non-blank lines) and fenced code blocks, with their heading path."""
    path: list[tuple[int, str]] = []
    root = [title.strip()] if title.strip() else []
    para_start: int | None = None
    para_end = 0
    in_fence = False
    offset = start
    for line in source[start:].splitlines(keepends=True):
        line_start, offset = offset, offset + len(line)
        stripped = line.strip()
        heading_match = _MD_HEADING.match(line.rstrip("\r\n")) if markdown else None
        if markdown and _FENCE.match(line):
            in_fence = not in_fence
        underline = _SETEXT.match(line) if markdown and not in_fence else None
        if underline and para_start is not None:  # the paragraph above is a heading
            level = 1 if underline.group(1) == "=" else 2
            path = _under(path, level, " ".join(source[para_start:para_end].split()))
            para_start = None
            continue
        if (not stripped and not in_fence) or (heading_match and not in_fence):
            if para_start is not None:
                yield _Block(para_start, para_end, _join(root, path))
                para_start = None
            if heading_match:
                path = _under(path, len(heading_match.group(1)), heading_match.group(2).strip())
            continue
        if para_start is None:
            para_start = line_start + (len(line) - len(line.lstrip()))
        if stripped:
            para_end = line_start + len(line.rstrip())
    if para_start is not None:
        yield _Block(para_start, para_end, _join(root, path))


def _under(path: list[tuple[int, str]], level: int, heading: str) -> list[tuple[int, str]]:
    """The heading path once `heading` of `level` begins: it ends the headings of its level
    and deeper."""
    return [*((lvl, text) for lvl, text in path if lvl < level), (level, heading)]


def _join(root: list[str], path: list[tuple[int, str]]) -> str:
    return HEADING_SEPARATOR.join(root + [text for _, text in path])


def _group_by_heading(blocks: list[_Block]) -> Iterator[tuple[str, list[_Block]]]:
    group: list[_Block] = []
    for block in blocks:
        if group and block.heading != group[0].heading:
            yield group[0].heading, group
            group = []
        group.append(block)
    if group:
        yield group[0].heading, group


def _tokens(text: str, count_tokens: Callable[[str], int]) -> int:
    return max(count_tokens(text) - 2, 1)  # without [CLS]/[SEP], so pieces add up


def _fit(
    source: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int]]:
    """Spans covering source[start:end], each within `budget`: sentences, then words."""
    tokens = _tokens(source[start:end], count_tokens)
    if tokens <= budget:
        return [(start, end)]
    for splitter in (_SENTENCE_END, _WORD_GAP):
        spans = _split_spans(source, start, end, splitter)
        if len(spans) > 1:
            return [p for s, e in spans for p in _fit(source, s, e, budget, count_tokens)]
    # One enormous "word" (a URL, base64): cut by characters into as many pieces as its
    # tokens need (halving counted the whole word's tokens again at each of ~10 levels: 68 s
    # for 400 kB of base64); a piece that still does not fit is cut again.
    width = max(1, -(-(end - start) * budget // tokens))
    return [
        piece
        for cut in range(start, end, width)
        for piece in _fit(source, cut, min(cut + width, end), budget, count_tokens)
    ]


def _split_spans(
    source: str, start: int, end: int, splitter: re.Pattern[str]
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cursor = start
    for gap in splitter.finditer(source, start, end):
        if gap.start() > cursor:
            spans.append((cursor, gap.start()))
        cursor = gap.end()
    if cursor < end:
        spans.append((cursor, end))
    return spans


def _pack(
    source: str, pieces: list[tuple[int, int]], budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int]]:
    """Greedily merge neighbouring pieces while their token sum stays within `budget`."""
    packed: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    used = 0
    for start, end in pieces:
        size = _tokens(source[start:end], count_tokens)
        if current is not None and used + size <= budget:
            current = (current[0], end)
            used += size
            continue
        if current is not None:
            packed.append(current)
        current, used = (start, end), size
    if current is not None:
        packed.append(current)
    return packed


def _verified(
    source: str,
    start: int,
    end: int,
    heading: str,
    max_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[tuple[int, int]]:
    """Token counts of pieces do not add up exactly; halve a chunk until it truly fits."""
    if count_tokens(embedding_text(heading, source[start:end])) <= max_tokens:
        return [(start, end)]
    spans = _split_spans(source, start, end, _WORD_GAP)
    if len(spans) < 2:
        middle = start + max(1, (end - start) // 2)
        if middle >= end:
            return [(start, end)]
        halves = [(start, middle), (middle, end)]
    else:
        half = len(spans) // 2
        halves = [(spans[0][0], spans[half - 1][1]), (spans[half][0], spans[-1][1])]
    return [
        p for s, e in halves for p in _verified(source, s, e, heading, max_tokens, count_tokens)
    ]
