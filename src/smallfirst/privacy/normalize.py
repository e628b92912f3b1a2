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
and a combining accent) is a word shape the NER has not learned; NFKC composes it. Then a
space goes between Chinese, Japanese or Korean script and ASCII next to it: those scripts
put no space between words (`メールはana@flux.ioです`), and the patterns need a word's edge.

Before all that, HTML character references are read (`&#64;`, `&#x40;`, `&commat;` as "@"),
then URL encoding (`%40` as "@"; "+" and "&" as spaces in a query string or a form body),
since an address or a number in a web page, a link or a form body is written so; then the
escapes of string literals (`\\u00e9`, `\\x40`) and the "+" between two literals, as code
writes a name or a key. A hidden character between a lower-case letter and a capital reads
as a space ("John\\u200dSmith"), elsewhere as nothing. Last, an
ideographic full stop between ASCII letters or digits reads as a dot (`ana。ruiz@flux。io`).

Each step is a list of edits to its input (`_replaced`), and the steps' maps are composed
(`_then`), so that every character of the view maps to the original it comes from.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

from smallfirst.invisible import INVISIBLE
from smallfirst.privacy.json_text import surrogate_pair
from smallfirst.privacy.secrets import names_a_secret

_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
_ESCAPED_QUOTE = re.compile(r'\\"')
# Kana, Han (with its extensions and compatibility ideographs) and Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
# Not at "@" or ".": they edge a word already, and a domain may be written in these scripts
# ("info@例え.jp", an internationalized domain, read as "info@ 例え .jp" was no address).
_ASCII_BUT_AT_OR_DOT = r"\x21-\x2d\x2f-\x3f\x41-\x7e"
_SCRIPT_CHANGE = re.compile(
    f"(?<=[{_CJK}])(?=[{_ASCII_BUT_AT_OR_DOT}])|(?<=[{_ASCII_BUT_AT_OR_DOT}])(?=[{_CJK}])"
)


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
    view = _html_unescaped(text)
    view = _then(view, _url_decoded(view.text))
    if "\\u" in view.text or "\\x" in view.text or "\\U" in view.text:
        view = _then(view, _code_escapes_read(view.text))
    if "+" in view.text and _CONCATENATION.search(view.text) is not None:
        view = _then(view, _concatenations_joined(view.text))
    if view.text.isascii():
        return view
    if not _reads_as_written(view.text):
        view = _then(view, _folded(view.text))
    if _SCRIPT_CHANGE.search(view.text) is not None:
        view = _then(view, _spaced_between_scripts(view.text))
    if "\u3002" in view.text and _DOT_LOOK_ALIKE.search(view.text) is not None:
        view = _then(view, _with_dots(view.text))
    return view


def with_escaped_quotes_read(view: NormalizedText) -> NormalizedText:
    """`view` with each escaped quote (JSON text, code) read as a quote: padded to its length
    with a space instead (`James  "Jimmy " McGill`), a name in JSON text was found up to its
    first quote only, and the rest of it went upstream in clear."""
    if '\\"' not in view.text:
        return view
    edits = ((quote.start(), quote.end(), '"') for quote in _ESCAPED_QUOTE.finditer(view.text))
    return _then(view, _replaced(view.text, edits))


def _reads_as_written(text: str) -> bool:
    return INVISIBLE.search(text) is None and unicodedata.is_normalized("NFKC", text)


def _folded(text: str) -> NormalizedText:
    """`text` without its default-ignorable code points, in NFKC, each character of the view
    mapped to the character (with its combining marks) it comes from."""
    return _replaced(text, _folding_edits(text))


def _folding_edits(text: str) -> Iterator[tuple[int, int, str]]:
    for run in _NOT_ASCII.finditer(text):
        begin = run.start()
        if begin > 0 and _is_mark(text[begin]):  # "e" + U+0301 is one character, "é"
            begin -= 1
        if _reads_as_written(text[begin : run.end()]):  # most non-ASCII text: "José", "東京"
            continue
        for start, end in _characters(text, begin, run.end()):
            reading = unicodedata.normalize("NFKC", INVISIBLE.sub("", text[start:end]))
            yield start, end, reading or _between_words(text, start, end)


def _between_words(text: str, start: int, end: int) -> str:
    """What hidden text[start:end] reads as: a space where it parts a word's lower-case end
    from the capital of the next, first of its run ("John\\u200dSmith", "Maria\\u2060Gonzalez";
    read as "JohnSmith", one word, the name was no name), else nothing ("Jo\\u200bhn"). Not
    inside an e-mail address's user ("ana\\u200bRuiz@flux.io" is one address)."""
    if start == 0 or not text[start - 1].islower():
        return ""
    after = end
    while after < len(text) and INVISIBLE.match(text, after):
        after += 1
    if after == len(text) or not text[after].isupper():
        return ""
    return "" if _USER_BEFORE_AT.match(text, after) else " "


# The rest of an e-mail address's user up to its "@" (RFC 5321: 64 characters at most; a bound,
# so that a long word of many hidden characters is not read to its end for each of them).
_USER_BEFORE_AT = re.compile(r"[^\s@]{0,64}@")


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


def _spaced_between_scripts(text: str) -> NormalizedText:
    """`text` with a space where CJK script and ASCII meet; the space stands for no
    character of `text` (an empty span where it was put)."""
    return _replaced(text, ((at.start(), at.start(), " ") for at in _SCRIPT_CHANGE.finditer(text)))


# RFC 3490 (3.1) and UTS #46 read the ideographic full stop as a domain's dot (NFKC folds the
# full-width and small full stops, and the half-width ideographic one into this one); only
# between ASCII letters or digits, where it is no sentence's end.
_DOT_LOOK_ALIKE = re.compile(r"(?<=[0-9A-Za-z])\u3002(?=[0-9A-Za-z])")


def _with_dots(text: str) -> NormalizedText:
    """`text` with each ideographic full stop inside a word of ASCII read as a dot."""
    return _replaced(
        text, ((dot.start(), dot.end(), ".") for dot in _DOT_LOOK_ALIKE.finditer(text))
    )


# A run of percent-encoded bytes (RFC 3986 2.1); one character takes up to four.
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# In a query string or a form body (application/x-www-form-urlencoded) "+" is a space and "&"
# ends a field: read as spaces (the NER took "Doe&email" for a word); not next to "=", "&" or
# "+", so that "phone=+44..." keeps its plus and code's "a && b" stays as it is.
_FORM_SEPARATOR = re.compile(r"(?<=[^\s=&?+])[+&](?=[^\s=&+])")
_FIELD_END = re.compile(r"[?&;]")
# A URL's user information (RFC 3986 3.2.1): a password there may hold "&" and "+", which
# separate nothing ("DATABASE_URL=postgres://app:Tr0ub&3@db" read "Tr0ub 3", and the secret
# rule no longer saw the password).
_USER_INFO = re.compile(r"://[^\s/?#@]*@")
_NON_BLANK = re.compile(r"\S+")
# A URL inside a URL's query is encoded twice ("%2540"): read again, a few times at most.
_DECODING_ROUNDS = 3


def _url_decoded(text: str) -> NormalizedText:
    """`text` with its percent-escapes read as the UTF-8 characters they encode, and "+" and
    "&" as spaces where they separate words and fields; each character mapped to the
    escapes it was written with."""
    view = NormalizedText(text)
    for round_ in range(_DECODING_ROUNDS):
        # "+" and "&" are read in the first round only: a decoded "%2B" is a plus ("q=a%2Bb")
        step = _percent_decoded(view.text, in_forms=round_ == 0)
        if step is None:
            break
        view = _then(view, step)
    return view


def _percent_decoded(text: str, *, in_forms: bool) -> NormalizedText | None:
    """One round of `_url_decoded`; None when nothing in `text` is URL encoding."""
    may_be_a_form = in_forms and "=" in text and ("+" in text or "&" in text)
    if "%" not in text and not may_be_a_form:
        return None
    edits = sorted(  # escapes first, then form separators, per run
        (run.start() + start, run.start() + end, reading)
        for run in _NON_BLANK.finditer(text)
        for start, end, reading in _url_edits(run.group(), in_forms=in_forms)
    )
    return _replaced(text, edits) if edits else None


class _FieldValue(NamedTuple):
    """A field's value in a query string or a form body: what follows "=" up to the next
    "?", "&" or ";"."""

    start: int
    end: int
    secret: bool  # its key names one ("password=...")


def _url_edits(word: str, *, in_forms: bool) -> Iterator[tuple[int, int, str]]:
    """(start, end, what it reads as) of each piece of URL encoding in a run of non-blank
    characters. Form separators only in a query string or a form body (a "key=value" and a
    "?" or "&"), and a "+" only in a field's value (in a path it is a plus). A secret's value
    is read as written: a password is no words, and the secret rule reads a value up to a
    space or an "&" ("password=hunter+2+go", "pw=correct%20horse")."""
    in_form = in_forms and "=" in word and ("&" in word or "?" in word)
    if "%" not in word and not in_form:
        return
    values = _field_values(word)
    value_starts = [value.start for value in values]

    def value_at(at: int) -> _FieldValue | None:
        index = bisect.bisect_right(value_starts, at) - 1
        return values[index] if index >= 0 and at < values[index].end else None

    for run in _PERCENT_RUN.finditer(word):
        value = value_at(run.start())
        if value is not None and value.secret:
            continue
        try:
            decoded = unquote(run.group(), errors="strict")
        except UnicodeDecodeError:  # not UTF-8 (Latin-1 escapes, "100%ff"): as written
            continue
        yield from _escaped_characters(run.start(), decoded)
    if in_form:
        user_info = [match.span() for match in _USER_INFO.finditer(word)]
        for separator in _FORM_SEPARATOR.finditer(word):
            if any(start < separator.start() < end for start, end in user_info):
                continue
            value = value_at(separator.start())
            if separator.group() == "&" or (value is not None and not value.secret):
                yield separator.start(), separator.end(), " "


def _escaped_characters(at: int, decoded: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, character) of each character of `decoded`, written as escapes from `at`
    on (`%C3%A9` is one "é")."""
    for character in decoded:
        end = at + 3 * len(character.encode("utf-8"))
        yield at, end, character
        at = end


def _field_values(word: str) -> list[_FieldValue]:
    values = []
    start = 0
    for end in [*(m.start() for m in _FIELD_END.finditer(word)), len(word)]:
        equals = word.find("=", start, end)
        if equals >= 0:
            values.append(_FieldValue(equals + 1, end, names_a_secret(word[start:equals])))
        start = end + 1
    return values


# An escape of a string literal that names a character by its code (JSON, JavaScript,
# Python, C, Java...): \u00e9 (a surrogate pair of two for one character), \u{1F600},
# \U0001F600, \x40; not itself escaped (an even number of backslashes before it).
_CODE_ESCAPE = re.compile(
    r"(?<!\\)(?:\\\\)*(?P<escape>\\(?:u(?P<high>[dD][89abAB][0-9a-fA-F]{2})"
    r"\\u(?P<low>[dD][c-fC-F][0-9a-fA-F]{2})|u(?P<u4>[0-9a-fA-F]{4})"
    r"|u\{(?P<braced>[0-9a-fA-F]{1,6})\}|U(?P<u8>[0-9a-fA-F]{8})|x(?P<x2>[0-9a-fA-F]{2})))"
)


def _code_escapes_read(text: str) -> NormalizedText:
    """`text` with each escape of `_CODE_ESCAPE` read as its character, mapped to the whole
    escape: code and logs write "José" as `Jos\\u00e9` and "@" as `\\x40`, and a name or an
    address so written was found in part or not at all. An escape of no character (a lone
    surrogate, past U+10FFFF) stays as written."""
    edits = []
    for match in _CODE_ESCAPE.finditer(text):
        if match["high"] is not None:
            code = surrogate_pair(match["high"], match["low"])
        else:
            code = int(match["u4"] or match["braced"] or match["u8"] or match["x2"], 16)
        if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            edits.append((match.start("escape"), match.end("escape"), chr(code)))
    return _replaced(text, edits) if edits else NormalizedText(text)


# Two string literals joined with "+" (JavaScript, Java, C#, Python...), the second one
# maybe on the next line: `"sk-proj-AbCd" + "EfGh..."`. Between a literal's last character
# and the next one's first (neither a quote, a blank or, before the closing quote, an escape).
_CONCATENATION = re.compile(
    r"(?<=[^\s\"'\\])(?P<quote>[\"'])[ \t]*(?:\n[ \t]*)?\+[ \t]*(?:\n[ \t]*)?(?P=quote)"
    r"(?=[^\s\"'])"
)


def _concatenations_joined(text: str) -> NormalizedText:
    """`text` with string literals joined by "+" read as one: a key or a password split in
    two was found in part, and the rest went upstream in clear. The glue reads as nothing,
    so a value found across it is replaced whole, the glue with it."""
    return _replaced(
        text, ((glue.start(), glue.end(), "") for glue in _CONCATENATION.finditer(text))
    )


# A character reference (HTML 5, 13.1.4): decimal or hexadecimal, its ";" optional as browsers
# read it in text; or named, with its ";" only (`?a=1&copy=2` is a query's field, and a
# browser reads it so in a link). Of a number longer than any code point, even with leading
# zeros, nothing is read (`html.unescape` raises on 4,301 decimal digits).
_HTML_REFERENCE = re.compile(
    r"&(?:#(?:[0-9]{1,10}(?![0-9])|[xX][0-9A-Fa-f]{1,8}(?![0-9A-Fa-f]));?"
    r"|[A-Za-z][A-Za-z0-9]{1,31};)"
)


@lru_cache(maxsize=1)
def _named_references() -> dict[str, str]:
    from html.entities import html5

    return {f"&{name}": value for name, value in html5.items() if name.endswith(";")}


def _html_unescaped(text: str) -> NormalizedText:
    """`text` with its character references read as `html.unescape` reads each one, each
    character mapped to the whole reference; the text itself when it holds none."""
    if "&" not in text:
        return NormalizedText(text)
    import html  # with its table of names: only when needed (`smallfirst --help` starts fast)

    named = _named_references()
    edits: list[tuple[int, int, str]] = []
    for reference in _HTML_REFERENCE.finditer(text):
        written = reference.group()
        # a name looked up whole: `html.unescape` reads "&notx;" as "¬x;"
        value = html.unescape(written) if written[1] == "#" else named.get(written)
        if value is not None:
            edits.append((reference.start(), reference.end(), value))
    if not edits:
        return NormalizedText(text)
    return _replaced(text, edits)


def _replaced(text: str, edits: Iterable[tuple[int, int, str]]) -> NormalizedText:
    """`text` with each span of `edits` (start, end, what it reads as; in order, apart)
    replaced: each character the span reads as is mapped to the whole span, a span read as
    "" is left out of the view, and an empty span (start == end) puts its text in there."""
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    copied = 0
    for start, end, reading in edits:
        if start > copied:
            pieces.append(text[copied:start])
            starts.extend(range(copied, start))
            ends.extend(range(copied + 1, start + 1))
        pieces.append(reading)
        for _ in reading:
            starts.append(start)
            ends.append(end)
        copied = end
    pieces.append(text[copied:])
    starts.extend(range(copied, len(text)))
    ends.extend(range(copied + 1, len(text) + 1))
    return NormalizedText("".join(pieces), (starts, ends))


def _then(view: NormalizedText, step: NormalizedText) -> NormalizedText:
    """The view that `step` made of `view.text`, mapped to `view`'s original (a step
    without a map changed nothing)."""
    if view._sources is None:
        return step
    if step._sources is None:
        return view
    view_starts, view_ends = view._sources
    step_starts, step_ends = step._sources
    starts: list[int] = []
    ends: list[int] = []
    for start, end in zip(step_starts, step_ends, strict=True):
        if end > start:
            starts.append(view_starts[start])
            ends.append(view_ends[end - 1])
        else:  # put in, standing for nothing: an empty span where it goes
            at = view_starts[start] if start < len(view_starts) else view_ends[-1]
            starts.append(at)
            ends.append(at)
    return NormalizedText(step.text, (starts, ends))
