"""The plain-Python person-name matchers."""

from __future__ import annotations

import pytest

from smallfirst.privacy import names
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from smallfirst.privacy.patterns import RuleFinder
from tests.helpers import matched_texts


def _values(text: str, finder: RuleFinder) -> list[str]:
    return matched_texts(finder, text, min_score=DEFAULT_SCORE_THRESHOLD)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Have you heard Tamara T Stanković speak yet?", ["Tamara T Stanković"]),
        ("The Vide A. Persson version", ["Vide A. Persson"]),
        ("verses from Faina D. Yefremova's Tales", ["Faina D. Yefremova"]),
        ("Today I Learned a thing", []),  # "I" is a word, not an initial
        ("Then A Song played", []),
        ("Meet at 12 John F. Street", []),  # an address
    ],
)
def test_names_with_a_middle_initial(text: str, expected: list[str]) -> None:
    assert _values(text, names.find_initialled_names) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my name is borna jerković but everyone calls me borna", ["borna jerković", "borna"]),
        ("her maiden name is nyberg", ["nyberg"]),
        ("sometimes people call me višeslav", ["višeslav"]),
        ("please call me back tomorrow", []),
        ("call me at 5", []),
        ("my name is spelled wrong", []),
        ("the variable name is foo", []),  # only a person's name after "my/his/... name is"
    ],
)
def test_lower_case_names_after_strong_cues(text: str, expected: list[str]) -> None:
    assert _values(text, names.find_lower_case_names) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Warrane, can I please speak to your boss?", ["Warrane"]),
        ("Thanks. Anna Berg, could you send the file?", ["Anna Berg"]),
        ("Sorry, can you repeat that?", []),
        ("Hi, could you help me?", []),
        ("Please, can we start?", []),
    ],
)
def test_people_addressed_by_name(text: str, expected: list[str]) -> None:
    assert _values(text, names.find_addressed_names) == expected


def test_possessive_after_a_cue_is_not_part_of_the_name() -> None:
    text = "Ashley:\"I'm Melvin's daughter\"."
    assert "Melvin" in _values(text, names.find_cued_names)
