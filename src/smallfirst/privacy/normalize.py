"""What the detector reads: a text as it looks, not as it is encoded. Text pasted from web
pages, Word or a CJK keyboard hides values from the patterns: a zero-width space inside an
e-mail address (`ana\\u200b.ruiz@flux.io`), full-width forms (`ａｎａ＠ｆｌｕｘ．ｉｏ`, `０７０`),
odd spaces inside a phone number, an address written on to the Japanese around it. The
detector reads a normalized view, and its findings are mapped back to offsets in the
original, so that redaction replaces the characters as they came, the hidden ones included,
and restore puts them back as they were.

The view drops default-ignorable code points (Unicode's Default_Ignorable_Code_Point: zero-
width spaces and joiners, word joiner, soft hyphen, byte-order mark, bidirectional marks,
variation selectors, tags; they do not render, so a reader never sees them) and applies NFKC
to what is left. NFKC, not NFC, because compatibility forms are the other spelling of the
same letters and digits: full-width and half-width forms, no-break, thin and ideographic
spaces, ligatures, mathematical alphanumerics. Not NFKD, because a decomposed "é" (an "e"
and a combining accent) is a word shape the NER has not learned; NFKC composes it. Last, a
space goes between Chinese, Japanese or Korean script and ASCII next to it: those scripts
put no space between words (`メールはana@flux.ioです`), and the patterns need a word's edge.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Unicode 15.1 DerivedCoreProperties.txt, Default_Ignorable_Code_Point (Python's unicodedata
# has no such property; a few of these are not format characters, such as the Hangul fillers
# and the variation selectors, and some format characters are visible, such as U+0600).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
# Kana, Han (with its extensions and compatibility ideographs) and Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
_SCRIPT_CHANGE = re.compile(f"(?<=[{_CJK}])(?=[!-~])|(?<=[!-~])(?=[{_CJK}])")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """The view the detector reads, and for each of its characters the span of the original
    it comes from (None when the view is the original)."""

    text: str
    _sources: tuple[Sequence[int], Sequence[int]] | None = None

    @property
    def text_is_original(self) -> bool:
        return self._sources is None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original that view span [start, end) comes from: a character the
        view spells as several ("½" as "1⁄2") is taken whole, and hidden characters inside
        the span are part of it."""
        if self._sources is None or start >= end:
            return start, end
        starts, ends = self._sources
        return starts[start], ends[end - 1]


def normalized(text: str) -> NormalizedText:
    """`text` as the detector should read it (module docstring)."""
    if text.isascii():
        return NormalizedText(text)
    view = NormalizedText(text) if _reads_as_written(text) else _folded(text)
    if _SCRIPT_CHANGE.search(view.text) is None:
        return view
    return _spaced_between_scripts(view)


def _reads_as_written(text: str) -> bool:
    return _INVISIBLE.search(text) is None and unicodedata.is_normalized("NFKC", text)


def _folded(text: str) -> NormalizedText:
    """`text` without its default-ignorable code points, in NFKC, each character of the view
    mapped to the character (with its combining marks) it comes from."""
    view: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    copied = 0  # the original up to here is in the view

    def copy_up_to(position: int) -> None:
        view.append(text[copied:position])
        starts.extend(range(copied, position))
        ends.extend(range(copied + 1, position + 1))

    for run in _NOT_ASCII.finditer(text):
        begin = run.start()
        if begin > copied and _is_mark(text[begin]):  # "e" + U+0301 is one character, "é"
            begin -= 1
        copy_up_to(begin)
        copied = begin
        if _reads_as_written(text[begin : run.end()]):  # most non-ASCII text: "José", "東京"
            continue
        for start, end in _characters(text, begin, run.end()):
            written = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text[start:end]))
            view.append(written)
            starts.extend([start] * len(written))
            ends.extend([end] * len(written))
        copied = run.end()
    copy_up_to(len(text))
    return NormalizedText("".join(view), (starts, ends))


def _characters(text: str, begin: int, end: int) -> Iterator[tuple[int, int]]:
    """The spans of the characters a reader sees in text[begin:end]: a code point with the
    combining marks after it."""
    start = begin
    for position in range(begin + 1, end):
        if not _is_mark(text[position]):
            yield start, position
            start = position
    yield start, end


def _is_mark(character: str) -> bool:
    return unicodedata.category(character).startswith("M")


def _spaced_between_scripts(view: NormalizedText) -> NormalizedText:
    """`view` with a space where CJK script and ASCII meet; the space stands for no
    character of the original (an empty span where it was put)."""
    text = view.text
    starts, ends = view._sources or (range(len(text)), range(1, len(text) + 1))
    pieces: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    copied = 0
    for change in _SCRIPT_CHANGE.finditer(text):
        at = change.start()
        pieces.extend((text[copied:at], " "))
        new_starts.extend((*starts[copied:at], starts[at]))
        new_ends.extend((*ends[copied:at], starts[at]))
        copied = at
    pieces.append(text[copied:])
    new_starts.extend(starts[copied:])
    new_ends.extend(ends[copied:])
    return NormalizedText("".join(pieces), (new_starts, new_ends))
