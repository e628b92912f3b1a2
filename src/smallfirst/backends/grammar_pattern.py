"""A JSON Schema `pattern` rewritten into the regex subset llama-cpp-python's converter turns
into a grammar over the *JSON text* of a string.

The converter copies escapes as they are: `\\d` became the literal text "\\d" (pydantic writes
`^\\d{5}$` for a zip code: no digit could be written), and `\\n` a raw line break, which no
JSON string holds. A negated class `[^,]` let a model write `"` (ending the string early), a
backslash or a control character. So, before the converter reads a pattern:

- `\\d`, `\\w`, `\\s` become classes (`\\s` is a space: a tab or line break would be an
  escape in the JSON text, two characters);
- `\\D`, `\\W`, `\\S` and negated classes also exclude `"`, the backslash and control
  characters (those are written escaped, and a pattern over the escaped text would differ);
- `\\n`, `\\r`, `\\t` become their escapes in the JSON text (a backslash, then the letter);
- an escaped punctuation character (`\\.`, `\\/`) becomes its code point, `[\\x2E]`: GBNF
  knows no `\\.` and llama.cpp refused the whole grammar;
- a quote or a backslash of the value is written escaped, as the JSON text has it (a class
  holding one is refused: one character of the value is two of the text);
- other letter escapes (`\\b`, `\\p{L}`, ...) are refused with a reason (ValueError).
"""

from __future__ import annotations

import re

_NOT_IN_JSON_TEXT = '"\\\\\\x00-\\x1F\\x7F'  # in a class: quote, backslash, control chars
_CLASSES = {"d": "0-9", "w": "A-Za-z0-9_", "s": " "}
_JSON_ESCAPES = {"n": "\\\\n", "r": "\\\\r", "t": "\\\\t"}


def grammar_pattern(pattern: str) -> str:
    out: list[str] = []
    i, in_class = 0, False
    repeats = _Repeats()
    while i < len(pattern):
        char = pattern[i]
        if not in_class:
            repeats.read(pattern, i)
        if char == "\\" and i + 1 < len(pattern):
            out.append(_escape(pattern[i + 1], in_class))
            i += 2
            continue
        if char == '"':
            out.append(_escaped_in_json('"', in_class))
            i += 1
            continue
        if char == "[" and not in_class:
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^" + _NOT_IN_JSON_TEXT)
                i += 2
                continue
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


_QUANTIFIER = re.compile(r"\{\d+(,\d*)?\}")


class _Repeats:
    """A quantifier repeats the atom before it (and a `?` after it makes it lazy), as ECMA-262
    regexes have it: `a*+`, `a?*` or `(a|*)` repeat nothing. The converter copied them, and
    llama.cpp refused the whole grammar, an error that could not say which pattern it was."""

    def __init__(self) -> None:
        self.after = "start"  # of the pattern, a group or a branch; or "atom", "repeat", "lazy"
        self.skip_to = 0  # the end of a `{m,n}` read

    def read(self, pattern: str, i: int) -> None:
        """Read `pattern[i]`, outside a class; the start of an escape is an atom."""
        if i < self.skip_to:
            return
        char = pattern[i]
        bounds = _QUANTIFIER.match(pattern, i) if char == "{" else None
        if char == "?" and pattern[i - 1 : i] == "(":  # "(?:": group syntax, not a repeat
            return
        if char in "*+?" or bounds is not None:
            self.skip_to = bounds.end() if bounds is not None else 0
            if self.after == "repeat" and char == "?":
                self.after = "lazy"
            elif self.after != "atom":
                raise ValueError(f"{char!r} at position {i} has nothing to repeat")
            else:
                self.after = "repeat"
        else:
            self.after = "start" if char in "(|^" else "atom"


def _escape(letter: str, in_class: bool) -> str:
    if letter in _CLASSES:
        return _CLASSES[letter] if in_class else f"[{_CLASSES[letter]}]"
    if letter.lower() in _CLASSES and not in_class:
        return f"[^{_CLASSES[letter.lower()]}{_NOT_IN_JSON_TEXT}]"
    if letter in _JSON_ESCAPES and not in_class:
        return _JSON_ESCAPES[letter]
    if letter.isalnum():
        where = " inside [...]" if in_class else ""
        raise ValueError(f"\\{letter}{where} is not supported by the local grammar")
    if letter in '\\"':
        return _escaped_in_json(letter, in_class)
    # Any other escaped character is itself, which GBNF writes as a code point ("\\." and
    # "\\/" are no GBNF escapes: llama.cpp refused the grammar); outside a class, as a class
    # of one, so that the converter does not read it as regex syntax.
    code = f"\\x{ord(letter):02X}" if ord(letter) < 0x100 else f"\\u{ord(letter):04X}"
    return code if in_class else f"[{code}]"


def _escaped_in_json(char: str, in_class: bool) -> str:
    """A quote or a backslash of the value: two characters of the JSON text, a backslash and
    itself (written as the converter reads a literal backslash, then the character)."""
    if in_class:
        raise ValueError(f"{char} inside [...] is not supported by the local grammar")
    return "\\\\" + ("\\\\" if char == "\\" else char)
