"""Names and places in structured text: the value of a field named for a person in code,
JSON, YAML or logs (`customer="Ana Ruiz"`, `"last_name": "Watanabe"`), and the cells of a
table (CSV, TSV, Markdown) under a header that names a person or a place ("Name", "Patient",
"City", "Address"), or beside such a label in a two-column table ("| Full name | Ana Ruiz |").
The NER reads such values poorly: they stand in quotes or between separators, without a
sentence around them. Also the speakers of a chat transcript, one of whom is a known name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from smallfirst.privacy import vetoes
from smallfirst.privacy.names import PARTICLE, plausible_name
from smallfirst.privacy.patterns import CAP_WORD, LETTER, UPPER, RuleMatch

_SCORE = 0.5
_PLACE_FIELD_SCORE = 0.6
# Words that qualify "name" as a person's ("first_name", "patientName", "Customer name").
_PERSON_QUALIFIERS = frozenset(
    {"full", "first", "last", "given", "family", "middle", "maiden", "legal", "person",
     "holder", "manager", "owner", "author", "member", "student", "client", "contact",
     "kin", "emergency"}
) | vetoes.PERSON_FIELD_LABELS  # fmt: skip
_PERSON_LABELS = frozenset(
    {"surname", "firstname", "lastname", "fullname", "givenname", "familyname", "manager",
     "owner", "author", "next of kin", "account holder", "card holder"}
) | vetoes.PERSON_FIELD_LABELS  # fmt: skip
_PLACE_LABELS = frozenset(
    {"city", "town", "country", "province", "county", "birthplace", "place of birth"}
)
_ADDRESS_LABELS = frozenset(
    {"address", "street", "street address", "home address", "postal address", "mailing address",
     "billing address", "shipping address", "address line 1", "address line 2", "postcode",
     "post code", "postal code", "zip", "zip code"}
)  # fmt: skip
# The words of those labels: a line without one is no header (cheaper than parsing it).
_LABEL_WORDS = tuple(
    {"name"}
    | {
        word
        for label in _PERSON_LABELS | _PLACE_LABELS | _ADDRESS_LABELS
        for word in label.split()
        if len(word) > 2 and word not in ("line", "next", "place")
    }
)
_NAME_VALUE = re.compile(rf"(?:(?:{PARTICLE}|{CAP_WORD}|[{UPPER}]\.)[ \t]+){{0,4}}{CAP_WORD}")
_PLACE_VALUE = re.compile(rf"[{UPPER}][{LETTER}'’.\-]*(?:[ \t]+[{LETTER}][{LETTER}'’.\-]*){{0,3}}")
_CAMEL_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])")
_LABEL_JUNK = re.compile(r"[\s_\-]+")


def _label_words(label: str) -> list[str]:
    """The words of a label in lower case: "patientName", "last_name" -> patient name, last
    name."""
    spaced = _CAMEL_HUMP.sub(" ", label.strip(" \t\"'`*#:"))
    return _LABEL_JUNK.sub(" ", spaced).lower().split()


def _kind_of_label(label: str) -> str | None:
    """What a field or column holds: PERSON, LOCATION (a place's name), ADDRESS (anything
    written there), NAME for a bare "name" (of a person as often as of a thing), or None."""
    words = _label_words(label)
    joined = " ".join(words)
    if not words:
        return None
    if joined in _PERSON_LABELS or (
        words[-1] == "name" and len(words) > 1 and words[-2] in _PERSON_QUALIFIERS
    ):
        return "PERSON"
    if joined == "name":
        return "NAME"
    if joined in _PLACE_LABELS:
        return "LOCATION"
    if joined in _ADDRESS_LABELS:
        return "ADDRESS"
    return None


def _value_match(kind: str, value: str) -> str | None:
    """The entity type of `value` under a label of `kind`, or None if it does not look like
    one. A bare "name" needs two words ("Build and test" and "Production" name things)."""
    if kind in ("PERSON", "NAME"):
        if _NAME_VALUE.fullmatch(value) is None or not plausible_name(value):
            return None
        return "PERSON" if kind == "PERSON" or len(value.split()) >= 2 else None
    if kind == "LOCATION":
        return "LOCATION" if _PLACE_VALUE.fullmatch(value) else None
    has_letters_or_digits = any(ch.isalnum() for ch in value)
    return "LOCATION" if has_letters_or_digits and value.lower() not in ("n/a", "none") else None


# `key = "value"`, `"key": "value"`, `key: 'value'`, `key => "value"` (one line, one quote);
# found from the assignment back to its key, as most words are no key.
_QUOTED_VALUE = re.compile(r"""[=:][=>]?[ \t]*(?P<quote>["'])(?P<value>[^"'\n]{1,80})(?P=quote)""")
_KEY_BEFORE = re.compile(r"""(?<![\w\-])([A-Za-z_][\w\-]{1,40})["']?[ \t]*[:=]?$""")


# A form's "City: Toronto", "Postal code: M5H 2N2" (names after "Name:" are cued in names.py).
_LABELLED_LINE = re.compile(
    r"^[ \t>*\-]*([A-Za-z][A-Za-z \t]{1,24}):[ \t]*([^\n]{1,80}?)[ \t]*$", re.M
)


_NUMBER_LINE = re.compile(r"[ \t]*\d")


def find_field_values(text: str) -> Iterator[RuleMatch]:
    if "=" not in text and ":" not in text:
        yield from _table_cells(text)
        return
    for match in _QUOTED_VALUE.finditer(text) if '"' in text or "'" in text else ():
        key = _KEY_BEFORE.search(text, max(0, match.start() - 45), match.start())
        kind = None if key is None else _kind_of_label(key.group(1))
        found = None if kind is None else _value_match(kind, match.group("value"))
        if found is not None:
            yield RuleMatch(found, match.start("value"), match.end("value"), _SCORE)
    for match in _LABELLED_LINE.finditer(text):
        kind = _kind_of_label(match.group(1))
        value = match.group(2)
        if (
            kind == "ADDRESS"
            and not any(ch.isdigit() for ch in value)
            and _NUMBER_LINE.match(text, match.end() + 1)
            and _value_match("PERSON", value)
        ):  # "Billing address: Ann Lee" and the street on the next line: the addressee
            yield RuleMatch("PERSON", match.start(2), match.end(2), _SCORE)
        elif kind in ("LOCATION", "ADDRESS") and _value_match(kind, value) is not None:
            # above the NER's: "City: Saint Pierre" names a place, whatever the NER reads
            yield RuleMatch("LOCATION", match.start(2), match.end(2), _PLACE_FIELD_SCORE)
    yield from _table_cells(text)


_SEPARATORS = ("|", "\t", ";", ",")
_MARKDOWN_RULE = re.compile(r"^[ \t|:\-]+$")


def _cells(line: str, start: int, separator: str) -> list[tuple[int, int]]:
    """(start, end) of each cell's text in a line, without blanks and quotes around it."""
    spans, position = [], 0
    parts = line.split(separator)
    if separator == "|" and line.strip().startswith("|"):
        position = len(parts[0]) + 1
        parts = parts[1:-1] if line.strip().endswith("|") else parts[1:]
    for part in parts:
        lead = len(part) - len(part.lstrip(" \t\"'"))
        value = part.strip(" \t\"'")
        spans.append((start + position + lead, start + position + lead + len(value)))
        position += len(part) + 1
    return spans


def _table_cells(text: str) -> Iterator[RuleMatch]:
    """Cells under a header that names a person or a place, and values beside such a label
    in rows of two cells."""
    if not any(separator in text for separator in _SEPARATORS) or "\n" not in text:
        return
    lines, offset = [], 0
    for line in text.split("\n"):
        lines.append((offset, line))
        offset += len(line) + 1
    header: list[str | None] | None = None
    separator = ""
    for start, line in lines:
        if header is not None and _MARKDOWN_RULE.match(line):
            continue
        if header is not None:
            cells = _cells(line, start, separator)
            if len(cells) != len(header):
                header = None
            else:
                for kind, (cell_start, cell_end) in zip(header, cells, strict=True):
                    found = None if kind is None else _value_match(kind, text[cell_start:cell_end])
                    if found is not None and cell_end > cell_start:
                        yield RuleMatch(found, cell_start, cell_end, _SCORE)
                continue
        separator = next((s for s in _SEPARATORS if s in line), "")
        lowered = line.lower()
        if not separator or not any(word in lowered for word in _LABEL_WORDS):
            continue
        cells = _cells(line, start, separator)
        kinds = [_kind_of_label(text[s:e]) for s, e in cells]
        if len(cells) >= 2 and any(kinds):
            header = kinds
        if len(cells) == 2 and kinds[0] is not None and kinds[1] is None:
            value_start, value_end = cells[1]
            found = _value_match(kinds[0], text[value_start:value_end])
            if found is not None and value_end > value_start:
                header = None
                yield RuleMatch(found, value_start, value_end, _SCORE)


# A line of a chat transcript: an optional time stamp, a one-word speaker, a colon and the
# message ("[12:26] Maya: are you still there?"), which chats often type in lower case.
_CHAT_LINE = re.compile(
    rf"^[ \t]*(?:\[[^\]\n]{{1,24}}\][ \t]*)?({CAP_WORD}):[ \t]+(?=[{LETTER}])", re.MULTILINE
)


def chat_speakers(text: str, person_spans: list[tuple[int, int]]) -> Iterator[RuleMatch]:
    """When one speaker of a transcript is a known name, the others are names too ("Gary:
    ok see you at 4" over "Guy: bring the forms"); labels of notes are not ("Pros: fast"
    over "Cons: slow")."""
    known_spans = set(person_spans)
    lines = [
        match
        for match in _CHAT_LINE.finditer(text)
        if plausible_name(match.group(1)) and not vetoes.is_field_label(match.group(1))
    ]
    known = {match.group(1) for match in lines if match.span(1) in known_spans}
    if not known:
        return
    for match in lines:
        if match.group(1) not in known:
            yield RuleMatch("PERSON", match.start(1), match.end(1), 0.6)
