"""The plain-Python rule matchers, and that importing the guard stays light."""

from __future__ import annotations

import subprocess
import sys

from smallfirst.privacy import patterns


def _values(text: str, finder: patterns.RuleFinder) -> list[str]:
    return [text[m.start : m.end] for m in finder(text) if m.score >= 0.4]


def test_multi_line_address_is_one_location() -> None:
    text = "Ship it to 6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677\nMobile: 555"
    assert _values(text, patterns.find_addresses) == [
        "6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677"
    ]


def test_abbreviated_german_streets_and_hungarian_house_numbers() -> None:
    text = "Ship to Hauptstr. 5, 10115 Berlin please"
    assert _values(text, patterns.find_addresses) == ["Hauptstr. 5, 10115 Berlin"]
    text = "Meet me at 1798 Eichendorffstr. 31\n Suite 426\n Emmingen-Liptingen\n Germany"
    assert _values(text, patterns.find_addresses) == [text.removeprefix("Meet me at ")]
    text = "Sjanne\n059 Nánási út 79. Apt. 246, Pomáz, Hungary 70951\n0494 26 46 14 office"
    assert _values(text, patterns.find_addresses) == [
        "059 Nánási út 79. Apt. 246, Pomáz, Hungary 70951"
    ]
    assert _values("Wohnt in der Bahnhofstr. 12.", patterns.find_addresses) == ["Bahnhofstr. 12"]


def test_address_stops_before_a_phone_line() -> None:
    text = "515 Gemsbok St\n Pietersburg 89082\n085 175 7641"
    assert _values(text, patterns.find_addresses) == ["515 Gemsbok St\n Pietersburg 89082"]


def test_phone_formats_and_non_phones() -> None:
    text = "Desk: 5403926876, mobile (37) 788-063, +46 (0)8 928 571 38, x 01.84.17.61.18"
    assert _values(text, patterns.find_phone_numbers) == [
        "5403926876", "(37) 788-063", "+46 (0)8 928 571 38", "01.84.17.61.18"
    ]  # fmt: skip
    assert _values("on 2000-04-16 at 11:34, SSN 123-45-6789", patterns.find_phone_numbers) == []


def test_six_digit_local_numbers_need_the_text_to_say_phone() -> None:
    assert _values("Can someone call me on 85 99 60? Thanks", patterns.find_phone_numbers) == [
        "85 99 60"
    ]
    assert _values("Phone:\n34 33 96", patterns.find_phone_numbers) == ["34 33 96"]
    assert _values("They sold 12 34 56 units", patterns.find_phone_numbers) == []
    assert _values("call me, zip 123 45", patterns.find_phone_numbers) == []  # two groups
    text = "9542 Main Street Suite 865\nGossau, Switzerland 97242\n33 44 48 office\n"
    assert _values(text, patterns.find_addresses) == [
        "9542 Main Street Suite 865\nGossau, Switzerland 97242"
    ]


def test_luhn_cards_and_lower_case_iban() -> None:
    assert _values("card 630427373398 ok", patterns.find_card_numbers) == ["630427373398"]
    assert _values("card 630427373399 ok", patterns.find_card_numbers) == []
    assert _values("my iban is gb42nawi04454264788619", patterns.find_ibans) == [
        "gb42nawi04454264788619"
    ]


def test_explicit_dates_versus_durations() -> None:
    assert patterns.is_explicit_date("Thursday")
    assert patterns.is_explicit_date("9/19/1963")
    assert not patterns.is_explicit_date("next week")
    assert not patterns.is_explicit_date("8+ years")


def test_iso_timestamps_are_one_date_with_fraction_and_offset() -> None:
    text = "at 2023-01-18 14:07:12.320874, 2024-05-01T09:30:00Z or 2024-05-01T09:30:00+02:00."
    assert _values(text, patterns.find_dates) == [
        "2023-01-18 14:07:12.320874", "2024-05-01T09:30:00Z", "2024-05-01T09:30:00+02:00"
    ]  # fmt: skip
    assert _values("on 2000-04-16 at 11:34, SSN 123-45-6789", patterns.find_dates) == ["2000-04-16"]


def test_importing_the_guard_and_its_cli_loads_no_nlp_library() -> None:
    code = (
        "import sys, smallfirst.privacy, smallfirst.cli.privacy;"
        "print(sorted(m for m in ('spacy', 'presidio_analyzer', 'tldextract', 'phonenumbers')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_foreign_street_endings_need_a_house_number() -> None:
    assert _values("Aniela is very reliable.", patterns.find_addresses) == []
    assert _values("Write to Hattie or Agata.", patterns.find_addresses) == []
    assert _values("It is at Mannerheimintie 5.", patterns.find_addresses) == ["Mannerheimintie 5"]
    assert _values("sent via Email today", patterns.find_addresses) == []


def test_units_and_place_name_links_stay_in_the_address() -> None:
    text = "at 6556 106 Rue Ettatawer Apt. 409\nSOUTH NEWDEGATE, WA 16469"
    assert _values(text, patterns.find_addresses) == [
        "6556 106 Rue Ettatawer Apt. 409\nSOUTH NEWDEGATE, WA 16469"
    ]
    text = "4596 Tylova 285\n Suite 578\n Ostrov nad Ohrí\n Czech Republic 56655"
    assert _values(text, patterns.find_addresses) == [text]


def test_numbers_named_as_other_identifiers_are_not_phones() -> None:
    assert _values("my driver's license number is 2270-66-1551", patterns.find_phone_numbers) == []
    assert _values("order no. 5130634 shipped", patterns.find_phone_numbers) == []
    assert _values("call 212-555-0199 about it", patterns.find_phone_numbers) == ["212-555-0199"]


def test_secrets_are_found_only_where_their_marker_is() -> None:
    text = "key=sk-live-abcdefghijklmnop1234 and password: hunter2hunter2"
    expected = ["sk-live-abcdefghijklmnop1234", "hunter2hunter2"]
    assert _values(text, patterns.find_secrets) == expected
    assert _values("no keys in this sentence", patterns.find_secrets) == []


def test_literal_alternation_prefers_the_longest_word() -> None:
    import re

    words = ["Mali", "Malta", "Malaysia", "Niger", "Nigeria", "Guinea", "Guinea-Bissau"]
    pattern = re.compile(rf"(?<!\w){patterns.literal_alternation(words)}(?!\w)")
    text = "Malaysia, Mali, Malta, Nigeria, Niger, Guinea-Bissau, Guinean, Guinea."
    assert pattern.findall(text) == [
        "Malaysia", "Mali", "Malta", "Nigeria", "Niger", "Guinea-Bissau", "Guinea"
    ]  # fmt: skip
