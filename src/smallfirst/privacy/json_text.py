"""PII inside JSON text: tool-call arguments and tool results are JSON, and a JSON encoder may
write "José" as `Jos\\u00e9` (Python's `json.dumps` does by default) and a line break inside
a value as `\\n`. The detector reads text, so such values were not found, or were found and
kept in their escaped spelling."""

from __future__ import annotations

import json
import re

# A \uXXXX escape (or a surrogate pair of them) not itself escaped: an even number of
# backslashes before it.
_UNICODE_ESCAPE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})"
)
# What a JSON string must keep escaped: control characters, the quote, the backslash, and a
# lone surrogate (no character of its own).
_KEEP_ESCAPED = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def looks_like_json(text: str) -> bool:
    """An object or array as JSON writes it, whole or cut off (a tool result cut at a size
    limit is still JSON text to its reader)."""
    return text.lstrip()[:1] in ("{", "[")


def readable_json(text: str) -> str:
    """`text` with its \\uXXXX escapes written as the characters they stand for, where JSON
    allows them as they are: the same JSON value, now readable to the detector. Text that
    does not look like JSON is returned as it is (in prose, `\\u00e9` may be meant
    literally)."""
    if "\\u" not in text or not looks_like_json(text):
        return text
    return _UNICODE_ESCAPE.sub(_character, text)


def _character(match: re.Match[str]) -> str:
    if match.group(2) is not None:
        backslashes, high, low = match.group(1, 2, 3)
        code = surrogate_pair(high, low)
    else:
        backslashes, code = match.group(4), int(match.group(5), 16)
    character = chr(code)
    if _KEEP_ESCAPED.match(character):
        return match.group()
    return backslashes + character


def surrogate_pair(high: str, low: str) -> int:
    """The code point a UTF-16 surrogate pair stands for, from the hex digits of each half."""
    return 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)


def whole_escapes_end(text: str, start: int, end: int) -> int:
    """`end`, or one less if the span would end inside an escape (`James \\"Jimmy\\` of
    `"James \\"Jimmy\\" McGill"`): replaced, half an escape would break the JSON."""
    trailing = len(text[start:end]) - len(text[start:end].rstrip("\\"))
    return end - 1 if trailing % 2 else end


def value_at(text: str, start: int, end: int, *, in_json: bool) -> tuple[int, str]:
    """A span found in `text`: where it ends and the value it holds. In JSON text it never
    ends inside an escape and its escapes are undone; elsewhere it is as written."""
    if not in_json:
        return end, text[start:end]
    end = whole_escapes_end(text, start, end)
    return end, unescaped_value(text[start:end])


def unescaped_value(value: str) -> str:
    """A value found in JSON text as it reads once JSON's escapes are undone ("Road\\nOxford"
    -> a line break): what the placeholder stands for, as the same value in prose is. A value
    that is not a valid JSON string body is its own reading."""
    if "\\" not in value:
        return value
    try:
        unescaped = json.loads(f'"{value}"')
    except ValueError:
        return value
    return unescaped if isinstance(unescaped, str) else value
