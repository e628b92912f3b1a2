"""English prose and forms: US state codes with ZIP and ZIP+4 codes, a UK National Insurance
number's digits, clock times with seconds, form dates over a line break, senders after
"from", countries that are given names, chat transcripts, form labels and titles before a
name."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, dates, names, patterns
from tests.helpers import found_of_types, matched_texts


def _postcodes(text: str) -> list[str]:
    return matched_texts(addresses.find_postcodes, text)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Does she still live in Moodyburgh, ND 47287?", "ND 47287"),
        ("Ship it to Austin TX 78701-1234 please.", "TX 78701-1234"),
        ("he moved to springfield, il 62704 last year.", "il 62704"),
    ],
)
def test_a_state_code_and_a_zip_code_are_a_place(text: str, place: str) -> None:
    assert _postcodes(text) == [place]
    # a state code needs a town or a comma before it, and a capital outside lower-case texts
    assert _postcodes("We shipped 12 units to IN 46204 customers.") == []
    assert _postcodes("in 46204 cases the test failed ok 12345 times") == []
    assert _postcodes("Ship it to Austin, tx 78701 please.") == []


def test_a_zip_plus_four_ends_an_address_and_is_no_phone(detector: PiiDetector) -> None:
    text = "Pickup: 666 Brittany Curve, East Kenneth, FL 20565-0943 on Wednesday."
    assert found_of_types(detector, text, "LOCATION") == [
        "666 Brittany Curve, East Kenneth, FL 20565-0943"
    ]
    assert found_of_types(detector, text, "PHONE_NUMBER") == []


@pytest.mark.parametrize(
    "text",
    ["National Insurance number ZZ 92 50 23 T.", "Her NI number: QQ 12 34 56 C, thanks"],
)
def test_the_digits_of_a_national_insurance_number_are_no_phone(text: str) -> None:
    assert list(patterns.find_phone_numbers(text)) == []
    # a local number where the text says so is still one
    assert [m.score for m in patterns.find_phone_numbers("Call me on 85 99 60.")] == [0.45]


def test_a_clock_time_with_seconds_is_a_time() -> None:
    text = "The job ran at 14:22:05 and again at 9:15."
    assert matched_texts(dates.find_dates, text) == ["14:22:05"]


def test_a_form_date_ends_at_its_line(detector: PiiDetector) -> None:
    text = "Full name: Guy Graham\nDOB: Feb 03, 1960\nAge: 91"
    assert found_of_types(detector, text, "DATE_TIME") == ["Feb 03, 1960"]


@pytest.mark.parametrize(
    "text",
    [
        "Payment received from Ann Lee",
        "a transfer of GBP 120 from Ann Lee",
        "a message from Ann Lee",
    ],
)
def test_a_sender_after_from_is_no_place(text: str) -> None:
    assert not names.preceded_by_place_preposition(text, text.index("Ann Lee"))
    text = "She flew in from Ann Lee"  # no sender word: perhaps a place
    assert names.preceded_by_place_preposition(text, text.index("Ann Lee"))


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("Jordan Davis will call you tomorrow.", "Jordan Davis"),
        ("Transfer of GBP 12.00 from Chad Smith, ref 44.", "Chad Smith"),
        ("Driver: Jordan Davis, licence no. G4370499.", "Jordan Davis"),
    ],
)
def test_a_country_that_opens_a_full_name_is_a_given_name(
    detector: PiiDetector, text: str, person: str
) -> None:
    assert found_of_types(detector, text, "PERSON") == [person]
    assert found_of_types(detector, text, "LOCATION") == []
    # before a place word or a word that is no name, or after "in", it is a country
    text = "I flew to Jordan Monday, then to the Jordan Valley. In Kenya Airways lounges I slept."
    assert "Jordan" in " ".join(found_of_types(detector, text, "LOCATION"))
    assert found_of_types(detector, text, "PERSON") == []


def test_one_known_speaker_makes_the_others_names(detector: PiiDetector) -> None:
    text = "Gary: ok see you at 4:44AM\nGuy: bring the forms for Bill"
    assert found_of_types(detector, text, "PERSON") == ["Gary", "Guy", "Bill"]
    # labels of notes stay what they are
    assert found_of_types(detector, "Pros: fast and cheap\nCons: slow to start", "PERSON") == []


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("INVOICE 7359\nBill to: Guy Martin\nEvans Ltd", "Guy Martin"),
        ("According to Professor Strong, the samples were sent.", "Strong"),
        ("Send it for the attention of Summer Banks.", "Summer Banks"),
    ],
)
def test_a_label_or_title_before_a_name(detector: PiiDetector, text: str, person: str) -> None:
    assert found_of_types(detector, text, "PERSON") == [person]
