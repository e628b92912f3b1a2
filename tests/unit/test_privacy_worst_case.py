"""The rules' work stays linear in the text on inputs that made it quadratic (a request of
repeated words held a worker for seconds to minutes). Checked by what each rule reads, not
by timing: the finders' results are those of the rules before."""

from __future__ import annotations

import re
from typing import Any

import pytest

from smallfirst.privacy import (
    addresses,
    dates,
    fields,
    names,
    patterns,
    recognizers,
    secrets,
    vetoes,
)
from tests.helpers import matched_texts


class _Recording:
    """A compiled pattern that records the (pos, endpos) of each call."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.calls: list[tuple[int, int]] = []

    def _record(self, method: str, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        end = len(text) if endpos is None else endpos
        self.calls.append((pos, end))
        return getattr(self.pattern, method)(text, pos, end)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        return self._record("match", text, pos, endpos)

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        return self._record("search", text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        return self._record("finditer", text, pos, endpos)


def test_many_speakers_in_one_utterance_read_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    utterance = _Recording(names._UTTERANCE)
    monkeypatch.setattr(names, "_UTTERANCE", utterance)
    text = "Ann: " * 2000 + "What a day.\nBob: Cid: ON\nMaria: We are late"
    found = {text[m.start : m.end] for m in names.find_acting_names(text)}
    assert found == {"Ann", "Maria"}  # Bob's and Cid's line says nothing: a form's fields
    assert len(utterance.calls) <= 3  # one per utterance (was one per speaker: 2,000)


def test_a_stop_after_an_address_is_looked_up_in_its_last_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    abbreviation = _Recording(addresses._ABBREVIATION_END)
    monkeypatch.setattr(addresses, "_ABBREVIATION_END", abbreviation)
    text = "12 Main St, Springfield. " * 200
    found = matched_texts(addresses.find_addresses, text)
    assert found[:2] == ["12 Main St, Springfield", "12 Main St, Springfield"]
    assert abbreviation.calls
    assert all(end - start <= len("Bldg.") for start, end in abbreviation.calls)


def test_a_command_is_read_up_to_the_next_command() -> None:
    # Each "curl" or "mysql" read the rest of its line: a line of them was quadratic.
    assert secrets._CLI_CREDENTIALS.match("curl wget -u ann:S3cret!") is None
    assert secrets._MYSQL_PASSWORD.match("mysql mysqldump -pS3cret") is None
    for text, secret in (
        ("curl wget -u ann:S3cret!", "S3cret!"),
        ("mysql mysqldump -pS3cret", "S3cret"),
        ("curl -X POST -u ann:S3cret! https://x", "S3cret!"),
    ):
        assert matched_texts(secrets.find_secrets, text) == [secret]


def test_a_url_scheme_is_read_once_per_run_of_its_characters() -> None:
    text = "see a.b+c-d://ann:S3cret@db.example.org"
    assert secrets._URL_PASSWORD.match(text, text.index("b")) is None  # not from inside the run
    assert matched_texts(secrets.find_secrets, text) == ["S3cret"]
    text = "x-y.z://u:pw123456@h"  # a dash before a letter: the scheme may start there
    assert matched_texts(secrets.find_secrets, text) == ["pw123456"]


def test_private_key_headers_without_a_footer_are_not_read_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block = _Recording(secrets._PRIVATE_KEY)
    monkeypatch.setattr(secrets, "_PRIVATE_KEY", block)
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"
    headers = "-----BEGIN PRIVATE KEY-----\n" * 500
    text = key + "\n" + headers
    assert matched_texts(secrets.find_secrets, text) == [key]
    assert block.calls == [(0, len(key))]  # the headers after the last footer: not read
    block.calls.clear()
    assert list(secrets.find_secrets(headers)) == []
    assert block.calls == []


def test_a_comma_list_without_an_end_is_read_once() -> None:
    # Tried from each item, a list of names with no "and ..." after it was read to its end
    # from every one of them: 100,000 characters of "John Smith, " took 59 s.
    text = "John Smith, " * 2000
    reads = [m.span() for m in names._NAME_LIST.finditer(text)]
    assert reads == [(0, len(text) - 2)]  # one read of the whole list, which has no end


def test_a_list_with_an_end_still_names_the_items_between_known_names() -> None:
    text = "Invite Maria Garcia, John Smith, Kwame, and Priya Patel."
    known = [
        (text.index(name), text.index(name) + len(name)) for name in ("Maria Garcia", "John Smith")
    ]
    found = [text[m.start : m.end] for m in names.names_in_lists(text, known)]
    assert found == ["Kwame", "Priya Patel"]


def test_streets_of_a_lower_case_text_are_read_in_a_window_of_their_own() -> None:
    # each try reads a bounded stretch, and each street is checked against the addresses
    # found before by a binary search, not against all of them
    text = "at 123 main st apt 4; " * 5000
    found = [(m.start, m.end) for m in addresses.find_addresses(text)]
    streets = [(start, end) for start, end in found if text[start:end] == "123 main st apt 4"]
    assert len(streets) == 5000  # each found once, beside its unit ("apt 4") found alone
    for start, end in streets[::997]:
        window = addresses._LOWER_CASE_STREET.match(text, start, start + 60)
        assert window is not None
        assert window.span() == (start, end)
    nothing = "123 ab cd " * 10000
    assert list(addresses.find_addresses(nothing)) == []


def test_a_street_ending_in_strasse_is_read_from_its_word_start_only() -> None:
    # "-strasse" needs no number, so every letter could open one: a word is tried once
    word = "A" + "b" * 5000 + "strasse"
    assert addresses._ADDRESS_CORE.match(word, 1) is None
    assert [(m.start, m.end) for m in addresses.find_addresses(word)] == [(0, len(word))]


@pytest.mark.timeout(60)  # before, the line below took hours: each "hi" matched two ways
def test_a_line_of_repeated_greetings_is_read_once() -> None:
    text = "hi " * 60 + "\nHello hello Ana, can we talk?"
    found = matched_texts(names.find_addressed_names, text)
    assert found == ["Ana"]


@pytest.mark.timeout(60)  # before, the blanks after a stop were split between two runs
def test_blanks_after_a_stop_are_read_once_for_a_greeting() -> None:
    text = "." + " " * 200_000 + "Hi Ana, how are you?"
    found = matched_texts(names.find_addressed_names, text)
    assert found == ["Ana"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "Van der " * 12_500,  # Dutch particles and no street after them
        "12 Aa Bb Cc Edge x " * 5_300,  # an everyday road type with no town after it
        "12 " + "Aa " * 33_000 + "Edge\nTown",  # more capitalised words than a street name has
        "Studio 1, " * 10_000,  # a unit word and numbers with no street after them
    ],
)
def test_street_forms_of_other_locales_stay_linear(text: str) -> None:
    found = matched_texts(addresses.find_addresses, text)
    assert not any(
        piece.startswith(("Van der", "12 Aa Bb Cc Edge")) or "Aa Aa Aa Aa Edge" in piece
        for piece in found
    )


@pytest.mark.timeout(60)
def test_company_partners_and_prose_in_a_name_are_read_once() -> None:
    partners = ", Aa" * 25_000  # partners with no "and" and no legal form at their end
    assert patterns.COMPANY_PARTNERS_AFTER.match(partners) is None
    for long_span in ("Ann Lee " + "xo " * 30_000, "Ann Lee " + "la " * 30_000 + "xo"):
        assert recognizers.prose_cut(long_span, 0, len(long_span)) == len("Ann Lee")


BLANKS = " \t" * 100_000  # a long run of blanks: read two ways, it was read n² / 2 times


@pytest.mark.timeout(60)  # before, each of these took minutes to hours
@pytest.mark.parametrize(
    ("pattern", "name", "still_found"),
    [
        (patterns.COMPANY_SUFFIX_AFTER, "Ann Lee", " \t , Inc."),  # a legal form after a name
        (patterns.COMPANY_PARTNERS_AFTER, "Ann Lee", " , Orengo \t e Foà s.r.l."),  # partners
        (vetoes._NUMBER_FIELD_AFTER, "Ann Lee", ". \t: +44"),  # a label's number field
    ],
    ids=["legal form", "partners", "number field"],
)
def test_blanks_after_a_name_are_read_once(
    pattern: re.Pattern[str], name: str, still_found: str
) -> None:
    assert pattern.match(name + BLANKS + "x", len(name)) is None
    assert pattern.match(name + "." + BLANKS + "x", len(name)) is None
    assert pattern.match(name + still_found, len(name)) is not None


@pytest.mark.timeout(60)
def test_blanks_after_a_title_or_a_stop_are_read_once_for_a_name() -> None:
    assert list(names.find_cued_names("Hi Sr." + BLANKS + "x")) == []
    assert list(names.find_acting_names("Done." + BLANKS + "x")) == []
    text = "Hi Mr." + BLANKS[:8] + "\n  Ann Lee, thanks. Done." + BLANKS[:8] + "Bo said so."
    cued = matched_texts(names.find_cued_names, text)
    acting = matched_texts(names.find_acting_names, text)
    assert cued == ["Ann Lee"]
    assert acting == ["Bo"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "Austin TX 7870 " * 6_000,  # a state code and four digits: no ZIP code
        ", " * 50_000,
        "Aaaa" + " " * 100_000 + "TX 78701x",
        ", tx 7870 " * 10_000,  # all in lower case
    ],
)
def test_state_codes_without_a_zip_code_stay_linear(text: str) -> None:
    assert list(addresses.find_postcodes(text)) == []


@pytest.mark.timeout(60)
def test_senders_and_chat_speakers_stay_linear() -> None:
    text = "transfer of " * 10_000 + "from Ann Lee"
    assert not names.preceded_by_place_preposition(text, text.index("Ann Lee"))
    lines = "[12:00] Ann: ok\n" + "[" * 50_000 + "\n" + "Bob: fine\n" * 5_000
    known = [(lines.index("Ann"), lines.index("Ann") + 3)]
    found = {lines[m.start : m.end] for m in fields.chat_speakers(lines, known)}
    assert found == {"Bob"}


@pytest.mark.timeout(60)
def test_national_insurance_layouts_and_clock_times_stay_linear() -> None:
    assert list(patterns.find_phone_numbers("Call AB 12 34 56 C " * 5_000)) == []
    text = "12:34:56 " * 10_000
    assert len(list(dates.find_dates(text))) == 10_000


@pytest.mark.timeout(60)
def test_countries_before_names_and_dates_over_lines_stay_linear() -> None:
    text = "Jordan " * 15_000 + "Valley"
    assert matched_texts(recognizers.find_countries, text) == ["Jordan"]
    span = "Feb 03, 1960\nAge\n" * 5_000
    found = list(recognizers._dates_by_line(span, 0, len(span)))
    assert len(found) == 5_000
