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


def test_address_stops_before_a_phone_line() -> None:
    text = "515 Gemsbok St\n Pietersburg 89082\n085 175 7641"
    assert _values(text, patterns.find_addresses) == ["515 Gemsbok St\n Pietersburg 89082"]


def test_phone_formats_and_non_phones() -> None:
    text = "Desk: 5403926876, mobile (37) 788-063, +46 (0)8 928 571 38, x 01.84.17.61.18"
    assert _values(text, patterns.find_phone_numbers) == [
        "5403926876", "(37) 788-063", "+46 (0)8 928 571 38", "01.84.17.61.18"
    ]  # fmt: skip
    assert _values("on 2000-04-16 at 11:34, SSN 123-45-6789", patterns.find_phone_numbers) == []


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
