"""A number schema's bounds (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`)
as the JSON texts of the numbers between them, for the local grammar: llama-cpp-python's
converter ignores them, so `{"type": "integer", "minimum": 1, "maximum": 5}` let a model rate
something 42, and a confidence `{"type": "number", "minimum": 0, "maximum": 1}` be 85.

Integers are spelled for any bounds. A `number` is spelled when its bounds are whole numbers
and inclusive (0 to 1, 0 to 100: what schemas mostly ask), as an integer part and a fraction
with no exponent; other bounds of a `number` are not enforced.

A range is split where the texts change length and then, digit by digit, into runs a
character class can spell: 17..42 is "1" [7-9] | [2-3] [0-9] | "4" [0-2]. Texts have no
leading zero, and an integer no "-0", as JSON writes them. An unbounded side stops at 16
digits, as the converter's own integer rule does (or at the nearer bound's length, when that
is longer); a far bound of more than 40 digits is not spelled (1.79e308 as a maximum): the
unbounded side is written instead, all of it below the bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
MAX_DIGITS = 16  # llama-cpp-python's `integral-part`: up to 16 digits
MAX_BOUND_DIGITS = 40  # a bound nearest zero beyond 10**40 is refused (the grammar grows)


@dataclass(frozen=True)
class Digits:
    """Between `least` and `most` digits, each from `low` to `high`."""

    low: str
    high: str
    least: int = 1
    most: int = 1


@dataclass(frozen=True)
class Fraction:
    """An optional "." and 1 to 16 digits (`zeros_only`: each a 0)."""

    zeros_only: bool


Piece = str | Digits | Fraction  # literal text, a run of digits, a fraction
Spelling = tuple[Piece, ...]  # pieces one after the other


class BadBound(ValueError):
    """A bound no range can be read from: `key` names it (`empty`: a range no value fits)."""

    def __init__(self, key: str, reason: str, *, empty: bool = False) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.empty = empty


def has_bounds(schema: dict[str, Any]) -> bool:
    return any(key in schema for key in BOUND_KEYS)


def integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integer `schema` allows (None: no bound). `exclusiveMinimum`
    may be a number (JSON Schema 2019+) or, beside `minimum`, `true` (draft 4). Raises
    BadBound for a bound that is no number, too large, or a range no integer fits."""
    low = _edge(schema, "minimum", "exclusiveMinimum", step=1)
    high = _edge(schema, "maximum", "exclusiveMaximum", step=-1)
    if low is not None and high is not None and low > high:
        raise BadBound(_key(schema, "minimum"), _empty(schema, "integer"), empty=True)
    _refuse_too_far(low, high, schema)
    return low, high


def _refuse_too_far(low: int | None, high: int | None, schema: dict[str, Any]) -> None:
    """The bound nearest zero is spelled in full (a far one is left to the unbounded side):
    refused beyond 1e40, where the grammar would grow with it."""
    limit = 10**MAX_BOUND_DIGITS
    if low is not None and low >= limit:
        key = _key(schema, "minimum")
        raise BadBound(key, f"{key} at or above 1e{MAX_BOUND_DIGITS} is not supported")
    if high is not None and high <= -limit:
        key = _key(schema, "maximum")
        raise BadBound(key, f"{key} at or below -1e{MAX_BOUND_DIGITS} is not supported")


def _key(schema: dict[str, Any], inclusive: str) -> str:
    """The key a side's bound came from, as the schema spells it."""
    return inclusive if inclusive in schema else "exclusive" + inclusive.capitalize()


def no_integer_fits(schema: dict[str, Any]) -> bool:
    try:
        integer_bounds(schema)
    except BadBound as problem:
        return problem.empty
    return False


def fitting_types(kinds: list[Any], schema: dict[str, Any]) -> list[Any]:
    """A type list's types, once each, without "integer" when no integer fits its bounds and
    another type is listed (`["integer", "null"]` from 0.2 to 0.8 is null)."""
    unique = list(dict.fromkeys(kinds))
    if len(unique) > 1 and "integer" in unique and no_integer_fits(schema):
        unique.remove("integer")
    return unique


def _edge(schema: dict[str, Any], inclusive: str, exclusive: str, *, step: int) -> int | None:
    """The first integer inside one side's bounds; `step` points into the range."""
    inward, outward = (math.ceil, math.floor) if step > 0 else (math.floor, math.ceil)
    if schema.get(exclusive) is True:  # draft 4: the `minimum`/`maximum` itself is out
        edge = _bound(schema, inclusive, outward)
        return None if edge is None else edge + step
    edges = [_bound(schema, inclusive, inward)]
    if not isinstance(schema.get(exclusive), bool):
        beyond = _bound(schema, exclusive, outward)
        edges.append(None if beyond is None else beyond + step)
    given = [edge for edge in edges if edge is not None]
    if not given:
        return None
    return max(given) if step > 0 else min(given)


def _bound(schema: dict[str, Any], key: str, to_integer: Callable[[Decimal], int]) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadBound(key, f"{key} must be a number")
    # a float as written (1e39 is 10**39, not the binary double next to it)
    return value if isinstance(value, int) else to_integer(Decimal(repr(value)))


def whole_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """A `number`'s bounds when they are whole and inclusive, else None (not spelled). Raises
    BadBound for a bound that is no number or too large, or `minimum` above `maximum`."""
    for key in BOUND_KEYS:
        if not isinstance(schema.get(key), bool):  # an exclusive's `true` is draft 4's
            _bound(schema, key, math.floor)
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None and low > high:
        raise BadBound("minimum", _empty(schema, "number"), empty=True)
    exclusive = any(schema.get(key, False) is not False for key in BOUND_KEYS[2:])
    if exclusive or not all(float(edge).is_integer() for edge in (low or 0, high or 0)):
        return None
    whole_low = _bound(schema, "minimum", math.floor)
    whole_high = _bound(schema, "maximum", math.floor)
    _refuse_too_far(whole_low, whole_high, schema)
    return whole_low, whole_high


def _empty(schema: dict[str, Any], kind: str) -> str:
    given = ", ".join(f"{key} {schema[key]}" for key in BOUND_KEYS if key in schema)
    return f"no {kind} fits the bounds ({given})"


def spellings(low: int | None, high: int | None) -> list[Spelling]:
    """The texts of the integers from `low` to `high` (None: unbounded), as alternatives."""
    return _signed(low, high, _naturals, least_negative=1)  # no "-0"


def decimal_spellings(low: int | None, high: int | None) -> list[Spelling]:
    """The texts of the numbers from `low` to `high` (whole, None: unbounded), with a fraction
    of up to 16 digits and no exponent ("-0" and "-0.0" are zero, in range when zero is)."""
    return _signed(low, high, _decimal_naturals, least_negative=0)


def _signed(
    low: int | None,
    high: int | None,
    magnitudes: Callable[[int, int | None], list[list[Piece]]],
    *,
    least_negative: int,
) -> list[Spelling]:
    """The negative texts ("-" and the `magnitudes` from the least a negative one may have),
    then the others."""
    found: list[list[Piece]] = []
    if low is None or low < 0:
        nearest = least_negative if high is None or high >= 0 else -high
        found += [["-", *s] for s in magnitudes(nearest, None if low is None else -low)]
    if high is None or high >= 0:
        found += magnitudes(0 if low is None else max(low, 0), high)
    return [_joined(spelling) for spelling in found]


def _decimal_naturals(low: int, high: int | None) -> list[list[Piece]]:
    """low <= x <= high, x >= 0: any fraction below `high`, only zeros after it."""
    high = _within_reach(low, high)
    below = _naturals(low, None if high is None else high - 1) if high != low else []
    found = [[*spelling, Fraction(zeros_only=False)] for spelling in below]
    if high is not None:
        found.append([str(high), Fraction(zeros_only=True)])
    return found


def _within_reach(low: int, high: int | None) -> int | None:
    """`high`, or None when it has more than 40 digits (1.79e308, what some generators write
    for "no bound"): the unbounded side, every text of which is below it, is written instead
    of a grammar that grows with its length."""
    if high is not None and len(str(high)) > max(MAX_BOUND_DIGITS, len(str(low))):
        return None
    return high


def _naturals(low: int, high: int | None) -> list[list[Piece]]:
    """0 <= low <= high: split where the texts change length."""
    high = _within_reach(low, high)
    shortest = len(str(low))
    longest = shortest if high is None else len(str(high))
    within_first = high is not None and longest == shortest
    found = _same_length(str(low), str(high) if within_first else "9" * shortest)
    if high is None:
        longest = max(MAX_DIGITS, shortest) + 1  # every length after the first is whole
    if longest - shortest > 1:  # the lengths in between, each whole
        found.append([Digits("1", "9"), Digits("0", "9", shortest, longest - 2)])
    if high is not None and longest > shortest:
        found += _same_length("1" + "0" * (longest - 1), str(high))
    return found


def _same_length(first: str, last: str) -> list[list[Piece]]:
    """Digit strings from `first` to `last`, of one length (inner ones may begin with 0)."""
    shared = next((i for i, (a, b) in enumerate(zip(first, last, strict=True)) if a != b), None)
    if shared is None:
        return [[first]]
    prefix, first, last = first[:shared], first[shared:], last[shared:]
    rest = len(first) - 1
    if rest == 0:
        return [[prefix, Digits(first, last)]]
    low_lead, high_lead = int(first[0]), int(last[0])
    found: list[list[Piece]] = []
    if first[1:] != "0" * rest:  # the first lead digit, with only the tails from first's
        found += [[prefix + first[0], *s] for s in _same_length(first[1:], "9" * rest)]
        low_lead += 1
    tail: list[list[Piece]] = []
    if last[1:] != "9" * rest:
        tail = [[prefix + last[0], *s] for s in _same_length("0" * rest, last[1:])]
        high_lead -= 1
    if low_lead <= high_lead:
        leads = Digits(str(low_lead), str(high_lead))
        found.append([prefix, leads, Digits("0", "9", rest, rest)])
    return found + tail


def _joined(pieces: list[Piece]) -> Spelling:
    """Adjacent texts as one, empty ones dropped."""
    joined: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str) and joined and isinstance(joined[-1], str):
            joined[-1] += piece
        elif piece != "":
            joined.append(piece)
    return tuple(joined)


def as_gbnf(alternatives: list[Spelling]) -> str:
    """The alternatives as a GBNF expression, in parentheses."""
    return "(" + " | ".join(" ".join(map(_gbnf_piece, s)) for s in alternatives) + ")"


def as_regex(alternatives: list[Spelling]) -> str:
    """The alternatives as a Python regular expression (what the grammar matches)."""
    return "(?:" + "|".join("".join(map(_regex_piece, s)) for s in alternatives) + ")"


def _gbnf_piece(piece: Piece) -> str:
    if isinstance(piece, str):
        return f'"{piece}"'
    if isinstance(piece, Fraction):
        return f'("." {_gbnf_piece(_fraction_digits(piece))})?'
    return _class(piece) + _repeats(piece)


def _regex_piece(piece: Piece) -> str:
    if isinstance(piece, str):
        return re.escape(piece)
    if isinstance(piece, Fraction):
        return rf"(?:\.{_regex_piece(_fraction_digits(piece))})?"
    return _class(piece) + _repeats(piece)


def _fraction_digits(piece: Fraction) -> Digits:
    return Digits("0", "0" if piece.zeros_only else "9", 1, MAX_DIGITS)


def _class(piece: Digits) -> str:
    return f"[{piece.low}]" if piece.low == piece.high else f"[{piece.low}-{piece.high}]"


def _repeats(piece: Digits) -> str:
    if piece.least == piece.most == 1:
        return ""
    if piece.least == piece.most:
        return f"{{{piece.least}}}"
    return f"{{{piece.least},{piece.most}}}"
