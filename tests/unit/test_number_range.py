"""A number schema's bounds spelled as the texts a grammar allows
(`backends/number_range.py`): checked against arithmetic on every number of a window."""

from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import Any

import pytest

from smallfirst.backends.number_range import (
    MAX_DIGITS,
    BadBound,
    as_gbnf,
    as_regex,
    decimal_spellings,
    fitting_types,
    integer_bounds,
    spellings,
    whole_bounds,
)

WINDOW = range(-1300, 1400)
NOT_INTEGERS = ("-0", "007", "01", "-01", "", "-", "+1", "1.0", "1e3", " 1")


def allowed(low: int | None, high: int | None) -> re.Pattern[str]:
    return re.compile(as_regex(spellings(low, high)))


def in_range(n: int, low: int | None, high: int | None) -> bool:
    fits_digits = len(str(abs(n))) <= MAX_DIGITS or None not in (low, high)
    return (low is None or n >= low) and (high is None or n <= high) and fits_digits


RANGES = [(1, 5), (17, 42), (0, 0), (-5, -5), (-1, 1), (0, None), (None, 0), (None, -3)]
RANGES += [(5, 123456), (-99, 1000), (None, None), (999, 1000), (100, 199), (-1000, -999)]
generator = random.Random(7)  # a fixed sample of ranges: the test is the same every run
for _ in range(200):
    first = generator.randint(-12_000, 12_000)
    RANGES.append((first, generator.randint(first, 13_000)))


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_exactly_the_integers_of_the_range_are_spelled(low: int | None, high: int | None) -> None:
    pattern = allowed(low, high)
    edges = [n + d for n in (low or 0, high or 0) for d in (-1, 0, 1)]
    for n in [*WINDOW, *edges]:
        assert (pattern.fullmatch(str(n)) is not None) is in_range(n, low, high), n
    for text in NOT_INTEGERS:
        assert pattern.fullmatch(text) is None, text


def test_an_unbounded_side_stops_where_the_converters_integers_do() -> None:
    pattern = allowed(0, None)
    assert pattern.fullmatch("9" * MAX_DIGITS)
    assert not pattern.fullmatch("1" + "0" * MAX_DIGITS)
    longer = allowed(-(10**20), 10**20)  # a bound longer than that is spelled in full
    assert longer.fullmatch(str(10**20))
    assert longer.fullmatch(str(-(10**20)))
    assert not longer.fullmatch(str(10**20 + 1))


def test_a_range_is_a_few_alternatives_not_one_per_value() -> None:
    assert as_gbnf(spellings(17, 42)) == '("1" [7-9] | [2-3] [0-9] | "4" [0-2])'
    assert as_gbnf(spellings(1, 5)) == "([1-5])"
    int64 = spellings(-(2**63), 2**63 - 1)
    assert len(int64) < 80


@pytest.mark.parametrize(
    ("schema", "bounds"),
    [
        ({}, (None, None)),
        ({"minimum": 1, "maximum": 5}, (1, 5)),
        ({"minimum": 0.5, "maximum": 9.5}, (1, 9)),  # the integers within
        ({"exclusiveMinimum": 0, "exclusiveMaximum": 10}, (1, 9)),
        ({"exclusiveMinimum": 0.5, "exclusiveMaximum": 9.5}, (1, 9)),
        ({"minimum": 3, "exclusiveMinimum": 5}, (6, None)),  # the stricter of the two
        ({"maximum": 3, "exclusiveMaximum": 10}, (None, 3)),
        ({"minimum": 3, "exclusiveMinimum": True}, (4, None)),  # draft 4
        ({"maximum": 3, "exclusiveMaximum": True}, (None, 2)),
        ({"minimum": 3, "exclusiveMinimum": False}, (3, None)),
        ({"minimum": -2.5, "maximum": -0.5}, (-2, -1)),
        ({"maximum": 1e20}, (None, 10**20)),
        ({"minimum": 1e39}, (10**39, None)),  # as written, not the binary double beside it
        ({"minimum": 0, "maximum": 1e300}, (0, 10**300)),
    ],
)
def test_bounds_are_read_as_the_integers_they_allow(
    schema: dict[str, Any], bounds: tuple[int | None, int | None]
) -> None:
    assert integer_bounds(schema) == bounds


@pytest.mark.parametrize(
    ("schema", "key", "reason"),
    [
        ({"minimum": "1"}, "minimum", "minimum must be a number"),
        ({"maximum": True}, "maximum", "maximum must be a number"),
        ({"exclusiveMaximum": [1]}, "exclusiveMaximum", "must be a number"),
        ({"minimum": 1e300}, "minimum", "minimum at or above 1e40 is not supported"),
        ({"maximum": -1e41}, "maximum", "maximum at or below -1e40 is not supported"),
        ({"minimum": 5, "maximum": 1}, "minimum", "no integer fits the bounds (minimum 5"),
        ({"minimum": 1.2, "maximum": 1.8}, "minimum", "no integer fits"),
        ({"exclusiveMinimum": 1, "exclusiveMaximum": 2}, "exclusiveMinimum", "no integer fits"),
    ],
)
def test_bounds_no_integer_range_comes_from_are_refused(
    schema: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(BadBound) as refused:
        integer_bounds(schema)
    assert refused.value.key == key
    assert reason in refused.value.reason


JSON_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
DECIMALS = [f"{n}{fraction}" for n in range(-120, 130) for fraction in ("", ".0", ".5", ".01")]
DECIMALS += ["-0", "-0.0", "-0.5", "0.999", "1e3", "1E-2", "01", "1.", ".5", "-", "1.5e1"]
WHOLE_RANGES = [(0, 1), (0, 100), (1, 5), (-1, 1), (-5, -2), (None, 0), (0, None), (None, -3)]
WHOLE_RANGES += [(3, 3), (0, 0), (-3, -3), (None, None), (-100, 99)]


@pytest.mark.parametrize(("low", "high"), WHOLE_RANGES)
def test_exactly_the_decimals_of_a_whole_range_are_spelled(
    low: int | None, high: int | None
) -> None:
    """With no exponent; "-0" is zero, allowed where negative numbers are."""
    pattern = re.compile(as_regex(decimal_spellings(low, high)))
    for text in DECIMALS:
        value = Fraction(text) if JSON_DECIMAL.fullmatch(text) else None
        fits = value is not None and (low is None or value >= low)
        fits = fits and (high is None or value <= high)  # type: ignore[operator]
        if text.startswith("-") and value == 0:
            fits = fits and (low is None or low < 0)
        assert (pattern.fullmatch(text) is not None) is fits, text


@pytest.mark.parametrize(
    ("schema", "bounds"),
    [
        ({"minimum": 0, "maximum": 1}, (0, 1)),
        ({"minimum": 0.0, "maximum": 100.0}, (0, 100)),
        ({"minimum": 0, "exclusiveMinimum": False}, (0, None)),
        ({"minimum": 0.5}, None),  # a fraction: not spelled
        ({"exclusiveMinimum": 0}, None),  # exclusive: not spelled
        ({"maximum": 1, "exclusiveMaximum": True}, None),
        ({"minimum": 1.2, "maximum": 1.8}, None),  # no integer, and 1.5 fits
    ],
)
def test_a_numbers_whole_inclusive_bounds_are_spelled_and_others_not(
    schema: dict[str, Any], bounds: tuple[int | None, int | None] | None
) -> None:
    assert whole_bounds(schema) == bounds


def test_a_numbers_bounds_are_checked_all_the_same() -> None:
    with pytest.raises(BadBound, match="no number fits the bounds"):
        whole_bounds({"minimum": 2, "maximum": 1.5})
    with pytest.raises(BadBound, match="exclusiveMinimum must be a number"):
        whole_bounds({"exclusiveMinimum": "0"})


def test_a_far_bound_is_left_to_the_unbounded_side() -> None:
    """What some generators write for "no bound" (1.79e308, 1e300) was refused (review):
    beyond 40 digits the unbounded side is written, every text of it below the bound."""
    pattern = allowed(0, 10**300)
    assert pattern.fullmatch("9" * MAX_DIGITS)
    assert not pattern.fullmatch("1" + "0" * MAX_DIGITS)
    assert len(spellings(0, 10**300)) < 5
    assert allowed(-(10**300), -5).fullmatch("-" + "9" * MAX_DIGITS)


def test_a_type_list_drops_integer_when_no_integer_fits_and_another_type_does() -> None:
    """0.5 fits `["integer", "number"]` from 0.2 to 0.8, and null fits `["integer", "null"]`:
    the integer branch's "no integer fits" refused them (review)."""
    between = {"minimum": 0.2, "maximum": 0.8}
    assert fitting_types(["integer", "null"], between) == ["null"]
    assert fitting_types(["number", "integer", "number"], between) == ["number"]
    assert fitting_types(["integer"], between) == ["integer"]  # refused where it is read
    assert fitting_types(["integer", "null"], {"minimum": 1}) == ["integer", "null"]
