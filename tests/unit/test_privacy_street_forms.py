"""Forms of generated addresses and prompts: USPS and Australian street suffixes, German
streets joined by hyphens, a comma beside the house number, Romance street types, Portuguese
postcodes, hours with am/pm, salutations before a name, place fields and English town
endings."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, dates, patterns, place_names
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from tests.helpers import found_in, matched_texts


def _addresses(text: str) -> list[str]:
    return matched_texts(addresses.find_addresses, text, min_score=DEFAULT_SCORE_THRESHOLD)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Ship it to 28177 Derek Mountain please", "28177 Derek Mountain"),
        ("Bill 567 Yu Loaf today", "567 Yu Loaf"),
        (
            "Card sent to 766 Ballard Rotary\nSimmonsfurt, QLD, 2978",
            "766 Ballard Rotary\nSimmonsfurt, QLD, 2978",
        ),
        (
            "Mail 80356 Michael Mills\nJohnsonhaven, WA 88549",
            "80356 Michael Mills\nJohnsonhaven, WA 88549",
        ),
        (
            "Parcel at 420 Gairbekov Rapids\n Apt. 576\n Voormezele\n Belgium 92060",
            "420 Gairbekov Rapids\n Apt. 576\n Voormezele\n Belgium 92060",
        ),
    ],
)
def test_usps_and_australian_street_suffixes_after_a_number(text: str, address: str) -> None:
    assert _addresses(text) == [address]
    # words of landscape too: a street only after a number and a name
    assert _addresses(text.replace(address, "3 Falls")) == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Ambulance to Raphaela-Lübs-Platz 44-10\n77048 Bad Brückenau",
            "Raphaela-Lübs-Platz 44-10\n77048 Bad Brückenau",
        ),
        ("Turn left after Konrad-Adenauer-Straße and go on.", "Konrad-Adenauer-Straße"),
        ("It is Carlotta-Widhalm-Weg 2/1.", "Carlotta-Widhalm-Weg 2/1"),
        ("Visit Nathansteeg 96 tomorrow", "Nathansteeg 96"),
        ("Visit Hans Bogbindersstræde 367 tomorrow", "Bogbindersstræde 367"),
    ],
)
def test_german_hyphenated_streets_and_more_endings(text: str, address: str) -> None:
    assert _addresses(text) == [address]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Poirier\n36, chemin Leconte\n88420 Michaud", "36, chemin Leconte\n88420 Michaud"),
        ("761, Ahuja Road, Raurkela 813322", "761, Ahuja Road, Raurkela 813322"),
        ("Lunch on Largo Vítor Nascimento, 11.", "Largo Vítor Nascimento, 11"),
        ("Is Av Leonardo Gonçalves, 62 near?", "Av Leonardo Gonçalves, 62"),
        ("Left at Pasaje de Pablo Andrés 60 now", "Pasaje de Pablo Andrés 60"),
        ("Meet at Vicolo Stretto 4 now", "Vicolo Stretto 4"),
    ],
)
def test_a_comma_beside_the_house_number_and_romance_street_types(text: str, address: str) -> None:
    assert _addresses(text) == [address]


def test_years_weekdays_and_english_words_open_no_street() -> None:
    """A comma after a year is not after a house number, a weekday before a day of the month
    is no street name, and "During" does not end in a German "-ring"."""
    assert _addresses("Vaccination record: Tuesday 08 July 2025, Rewa health centre.") == []
    assert _addresses("In 2019, Park Avenue was closed.") == ["Park Avenue"]
    assert _addresses("During 1984, The Vanguard Group invested.") == []


def test_a_portuguese_postcode_is_no_phone_and_stays_in_the_address() -> None:
    text = "delivery address Alameda Barros, 36\n2377-932 Sacavém"
    assert _addresses(text) == ["Alameda Barros, 36\n2377-932 Sacavém"]
    assert [m for m in patterns.find_phone_numbers("CP 2377-932 Sacavém")] == []


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("Lands at 6:23AM, gate 4", "6:23AM"),
        ("Dinner at 9 PM sharp", "9 PM"),
        ("Call after 5pm", "5pm"),
        ("Opens at 7 a.m. daily", "7 a.m."),
        ("Closes 12:09AM", "12:09AM"),
    ],
)
def test_hours_with_am_or_pm(text: str, time: str) -> None:
    assert matched_texts(dates.find_dates, text) == [time]
    # not an hour: 13, a decimal, no am/pm
    for other in ("13 am", "5.9 PM", "11:34"):
        assert list(dates.find_dates(text.replace(time, other))) == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Dear Georg Nissen,\n\nThank you for your order.", "Georg Nissen"),
        ("Sorry Carter, we could not verify the account.", "Carter"),
    ],
)
def test_a_salutation_is_not_part_of_the_name(detector: PiiDetector, text: str, name: str) -> None:
    assert ("PERSON", name) in found_in(detector, text)
    assert not any(value.startswith(("Dear", "Sorry")) for _, value in found_in(detector, text))


def test_a_place_field_holds_a_place_whatever_the_ner_reads(detector: PiiDetector) -> None:
    text = "First name: Aimée\nLast name: Le Roux\nCity: Saint Pierre\nPostal code: 08177"
    assert ("LOCATION", "Saint Pierre") in found_in(detector, text)
    assert ("LOCATION", "Penafiel") in found_in(detector, "Town: Penafiel")


@pytest.mark.parametrize(
    ("text", "town"),
    [
        ("Tax form for Ann Lee, filed from Bryanside.", "Bryanside"),
        ("The clinic near Alimouth is closed.", "Alimouth"),
        ("Songwriters travel to Niitabury to share music.", "Niitabury"),
    ],
)
def test_towns_by_their_english_ending(detector: PiiDetector, text: str, town: str) -> None:
    assert ("LOCATION", town) in found_in(detector, text)
    assert matched_texts(place_names.find_shaped_towns, text) == [town]
    assert place_names.shaped_like_a_town(town)
    # a surname of such a shape as a sentence's subject is no town
    assert list(place_names.find_shaped_towns(f"{town} wrote a novel.")) == []
