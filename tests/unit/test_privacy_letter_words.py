"""The words around a name in letters and e-mails: sign-offs and greetings
(`privacy/letter_words.py`) and where a name starts after them (`names.name_start`)."""

from __future__ import annotations

import pytest

from smallfirst.privacy import names
from smallfirst.privacy.letter_words import after_valediction, is_valediction
from tests.helpers import matched_texts


@pytest.mark.parametrize(
    "value", ["Cordialement", "Mit freundlichen Grüßen,", "Kind  regards!", "best\tregards."]
)
def test_a_sign_off_is_known_whatever_its_case_spacing_and_punctuation(value: str) -> None:
    assert is_valediction(value)


@pytest.mark.parametrize("value", ["Sophie Lemonnier", "Regards to Sophie", "Cheers Sophie"])
def test_a_sign_off_with_more_words_is_not_one(value: str) -> None:
    assert not is_valediction(value)


def test_a_name_starts_on_the_line_after_a_sign_off_not_on_the_same_line() -> None:
    signed = "Cordialement,\nSophie Lemonnier"
    assert signed[after_valediction(signed) :] == "Sophie Lemonnier"
    assert after_valediction("Cordialement Sophie Lemonnier") == 0


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("cc Review Board", "cc Review Board"),  # opens sentences after a skipped word
        ("Remind 2 people", "Remind 2 people"),  # no capitalised word: the span stands
        ("Geachte Dhr.", ""),  # a greeting and a title: no name at all
        ("Hallo Doreen", "Doreen"),
    ],
)
def test_name_start_after_greetings_titles_and_verbs(value: str, name: str) -> None:
    assert value[names.name_start(value) :] == name


def test_a_run_of_greetings_without_a_name_is_read_once_not_every_way_it_splits() -> None:
    """Each greeting spelled twice ("hello", "Hello") in a case-blind pattern matched "hello "
    repeated n times in 2^n ways: a 54 KB prompt of them held the guard's thread for minutes
    (and a gateway's batch request with it). Without the fix this test runs into the suite's
    timeout."""
    assert list(names.find_addressed_names("hello " * 60 + "and so on")) == []
    text = "Hello hello Maria!"
    assert matched_texts(names.find_addressed_names, text) == ["Maria"]
