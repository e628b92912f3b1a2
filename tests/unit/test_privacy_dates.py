"""Dates written with the month names of German, French, Spanish, Italian, Portuguese and
Dutch, and eight-digit dates (YYYYMMDD) after a date-of-birth word; words that only look
like them stay clean."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, dates
from tests.helpers import matched_texts


def _dates(text: str) -> list[str]:
    return matched_texts(dates.find_dates, text)


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Geboren am 8. Oktober 1974 in Linz", "8. Oktober 1974"),
        ("Lieferung bis 30. Jänner", "30. Jänner"),
        ("Kündigung zum 31. Dez. 2026", "31. Dez. 2026"),
        ("Seit Oktober 2019 hier", "Oktober 2019"),
        ("né le 2 février 1961 à Nantes", "2 février 1961"),
        ("Signé le 1er août 2022.", "1er août 2022"),
        ("Réunion le 11 janv. 2027", "11 janv. 2027"),
        ("nacida el 6 de noviembre de 1993", "6 de noviembre de 1993"),
        ("Desde septiembre de 2018", "septiembre de 2018"),
        ("el 2 de mayo", "2 de mayo"),
        ("nata il 23 febbraio 1957", "23 febbraio 1957"),
        ("Consegna entro il 9 lug. 2026", "9 lug. 2026"),
        ("nascido em 19 de junho de 1988", "19 de junho de 1988"),
        ("Vencimento: 4 out. 2025", "4 out. 2025"),
        ("geboren op 27 oktober 1966", "27 oktober 1966"),
        ("Vergadering op 3 sept. 2025", "3 sept. 2025"),
        ("NÉ LE 15 DÉCEMBRE 1949", "15 DÉCEMBRE 1949"),
        ("Le 7 mars 1990, elle", "7 mars 1990"),
    ],
)
def test_dates_with_european_month_names(text: str, date: str) -> None:
    assert _dates(text) == [date]


@pytest.mark.parametrize(
    "text",
    [
        "Two Mars landers and 3 Mai Tai cocktails",
        "Mars 2030 is the launch window",
        "Add 4 mayo sachets",
        "Out of 8 out 3 were late",  # "out" is an abbreviation only with a full stop and a year
        "We need 6 set of keys",
        "It was 5 ago and 7 gen",
        "Listen to 2 Avril Lavigne songs",
        "We met 3 Julio Cortez fans",
    ],
)
def test_month_words_that_are_words_or_names_are_no_dates(text: str) -> None:
    assert _dates(text) == []


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("DOB 19790521", "19790521"),
        ("d.o.b. 20000229", "20000229"),
        ('{"member_dob": "19911130"}', "19911130"),
        ("dateOfBirth=19850707", "19850707"),
        ("date_of_birth: 19850707", "19850707"),
        ("Birth date (YYYYMMDD): 19700101", "19700101"),
        ("She was born on 19931224.", "19931224"),
        ("Geburtsdatum: 19660815", "19660815"),
        ("née le 19550403", "19550403"),
        ("Datum 20250610", "20250610"),
    ],
)
def test_eight_digit_dates_after_a_date_word(text: str, date: str) -> None:
    assert _dates(text) == [date]


@pytest.mark.parametrize(
    "text",
    [
        "Ticket 19790521 was closed",
        "build 20250610 is green",
        "DOB 19791321",  # no 13th month
        "DOB 20230229",  # 2023 was no leap year
        "DOB 18991231",  # before 1900
        "DOB 197905210",  # nine digits
        "We updated 19790521 rows",
        "the data 20250610 export",
    ],
)
def test_eight_digits_without_a_date_word_or_calendar_day_are_no_dates(text: str) -> None:
    assert _dates(text) == []


def _around(detector: PiiDetector, text: str, value: str) -> list[tuple[str, str]]:
    """The findings that overlap `value` in `text` (spaCy reads other words of a foreign
    sentence as it will)."""
    start = text.index(value)
    end = start + len(value)
    return [(f.entity_type, f.value_in(text)) for f in detector.inspect(text)
            if f.start < end and start < f.end]  # fmt: skip


def test_a_european_date_is_no_street_and_house_number(detector: PiiDetector) -> None:
    text = "Sie kam am 9 NOVEMBER 1989 an"
    assert _around(detector, text, "9 NOVEMBER 1989") == [("DATE_TIME", "9 NOVEMBER 1989")]
    text = "Nous partons le 5 Juin 2026"
    assert _around(detector, text, "5 Juin 2026") == [("DATE_TIME", "5 Juin 2026")]


def test_an_ordinal_indicator_the_view_folds_still_opens_a_date(detector: PiiDetector) -> None:
    # NFKC reads "1º" as "1o"
    text = "Chiuso il 1º novembre"
    assert _around(detector, text, "1º novembre") == [("DATE_TIME", "1º novembre")]


def test_dates_with_european_month_names_are_explicit() -> None:
    assert dates.is_explicit_date("17 juin")
    assert not dates.is_explicit_date("3 Mars rovers")
