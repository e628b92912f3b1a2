"""Forms of a template generator's US-style prompts: hours that open no street, street names
the NER reads as people, towns named by a compass point or a view, weekday abbreviations and
C's timestamps, texts typed all in lower case, German streets without a number and a
"Reminder:" label."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, dates, place_names
from tests.helpers import found_in, matched_texts


def _addresses(text: str) -> list[str]:
    return matched_texts(addresses.find_addresses, text)


def _dates(text: str) -> list[str]:
    return matched_texts(dates.find_dates, text)


@pytest.mark.parametrize(
    ("text", "found_dates"),
    [
        ("She left around 8 PM on 12/13/23.", ["8 PM", "12/13/23"]),
        ("The crew comes between 5 AM and 19:00.", ["5 AM"]),
        ("Patient: Ann Lee, DOB April 22, MRN 4471209.", ["April 22"]),
    ],
)
def test_an_hour_or_a_date_opens_no_street(text: str, found_dates: list[str]) -> None:
    assert _addresses(text) == []
    assert sorted(_dates(text), key=text.index) == found_dates
    # a house number, a name and a number still make one
    assert _addresses("Send it to 8 Palm on 12 please.") == ["8 Palm on 12"]


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("What time does the store on Peterson Stravenue close?", "Peterson Stravenue"),
        ("Our clinic on Paul Fords will close early.", "Paul Fords"),
        ("Is the branch on Mcintosh Passage open?", "Mcintosh Passage"),
    ],
)
def test_a_name_ending_in_a_street_suffix_is_a_street(
    detector: PiiDetector, text: str, street: str
) -> None:
    assert addresses.looks_like_street(street)
    found = found_in(detector, text)
    assert ("LOCATION", street) in found
    assert not any(kind == "PERSON" for kind, _ in found)


def test_surnames_that_are_street_words_stay_names() -> None:
    for name in ("Garth Brooks", "Harrison Ford", "Audrey Meadows", "Rosamund Pike", "Ann Hill"):
        assert not addresses.looks_like_street(name)


@pytest.mark.parametrize("town", ["North Jennifer", "New Christopher", "Port Joan", "Hudsonview"])
def test_towns_by_a_compass_point_or_a_view(town: str) -> None:
    assert place_names.shaped_like_a_town(town)
    assert not place_names.shaped_like_a_town(town.split()[-1] + " West")


def test_a_town_ending_in_view_after_a_preposition() -> None:
    text = "The bridge in Sarahview was completed in 1976."
    assert matched_texts(place_names.find_shaped_towns, text) == ["Sarahview"]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Pickup on Sun, Apr 10, after lunch.", "Sun, Apr 10"),
        ("Born Thu, Jun 21 in Ohio.", "Thu, Jun 21"),
        ("Login on Sun Oct 09 18:43:19 1983 from home.", "Sun Oct 09 18:43:19 1983"),
    ],
)
def test_weekday_abbreviations_and_c_timestamps(text: str, date: str) -> None:
    assert _dates(text) == [date]


def test_an_abbreviated_weekday_alone_is_a_word() -> None:
    assert _dates("Sun Microsystems and Sat nav; Wed. plans") == []


@pytest.mark.parametrize(
    ("text", "found_dates"),
    [
        ("i was charged twice on mon, mar 21 for it.", ["mon, mar 21"]),
        ("the unit is free from nov. 15, 2021.", ["nov. 15, 2021"]),
        ("a leak was reported on may 17 and fixed on thursday.", ["may 17", "thursday"]),
    ],
)
def test_dates_of_a_text_typed_in_lower_case(text: str, found_dates: list[str]) -> None:
    assert _dates(text) == found_dates
    # with capitals elsewhere, lower-case month names are words
    assert _dates("Tom " + text) == []


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("is it still 235 david cape suite 550, port michelle?", "235 david cape suite 550"),
        ("mail it to 5419 ellis shores, sallystad, ar 14737.", "5419 ellis shores"),
        (
            "change the address to 7449 joseph expressway apt. 123.",
            "7449 joseph expressway apt. 123",
        ),
    ],
)
def test_streets_of_a_text_typed_in_lower_case(text: str, street: str) -> None:
    assert street in _addresses(text)
    assert _addresses("Tom: " + text) in ([], ["suite 550"], ["apt. 123"])


@pytest.mark.parametrize(
    "text",
    ["i bought 12 new keys today", "support them in barra 15000 in its mission to grow"],
)
def test_counts_and_phrases_of_a_lower_case_text_are_no_streets(text: str) -> None:
    assert _addresses(text) == []


def test_a_reminder_label_is_no_speaker(detector: PiiDetector) -> None:
    text = "Reminder: Jeff Daniels's birthday is 7/7/1954."
    assert found_in(detector, text) == [("PERSON", "Jeff Daniels"), ("DATE_TIME", "7/7/1954")]


def test_a_german_street_needs_no_number() -> None:
    assert _addresses("Wir wohnen in der Stuckistrasse seit 2019.") == ["Stuckistrasse"]
    assert _addresses("Turn left after Schwarzstraße and go on.") == ["Schwarzstraße"]


@pytest.mark.parametrize(
    "text",
    [
        "How to Interview Candidates",
        "The Year in Review",
        "Thinking from Inside the Box",
        "Jump to Overview",
        "Meet me in Downtown tonight",
    ],
)
def test_words_shaped_like_towns_are_no_towns(text: str) -> None:
    assert list(place_names.find_shaped_towns(text)) == []
    town = "We moved to Clearview in May"
    assert [(m.start, m.end) for m in place_names.find_shaped_towns(town)] == [(12, 21)]
