"""The rules' shortcuts find what the full patterns find: a pre-check that skips a pattern on a
text it cannot match, a guard on the characters a match can start with, a trie for a list of
words. Each is compared with the pattern run without it, on the forms it is about and on texts
just short of them."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest
import regex

from smallfirst.privacy import addresses, dates, names, recognizers, spelled_emails
from smallfirst.privacy.detect import SUPPORTED_ENTITIES
from smallfirst.privacy.patterns import RuleMatch, literal_alternation
from smallfirst.privacy.recognizers import RuleSet, known_email_domain

_PRESIDIO_FORMS = [
    # payment cards: groups of four, of three, none, dashes; one digit short
    "card 4111 1111 1111 1111 or 4111-1111-1111-1111, amex 378282246310005",
    "pay with 5500 000 000 0004 or 6011000990139424 today",
    "short 4111 1111 1111 11 and 4111 111 111 11",
    # US SSNs in each layout Presidio reads
    "SSN 078-05-1120, 078 05 1120, 078.05.1120, 123456789, 12345-6789 and 123-456789",
    # dates in each of Presidio's patterns
    "at 2024-03-05T10:20:30.5+01:00, 2024-03-05T10:20Z, 03/05/2024, 5/3/24, 2024/3/5",
    "on 3-5-2024, 5.3.24, 05-MAR-2024, MAR-2024, 5-Mar, 3/2024 and 3/24",
    # IPv4, IPv6 in its shortened and full forms, mapped and embedded IPv4
    "hosts 192.168.0.1, 10.0.0.1/24, ::1, ::, ::ffff:192.0.2.128, 64:ff9b::192.0.2.33",
    "v6 2001:db8::8a2e:370:7334 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334, fe80::1%eth0",
    "not quite: 1.2.3, 12:30:45, a:b:c:d:e:f:g and 10.5 kg",
    # UK National Insurance numbers, spaced and not, lower case
    "NINO AB 12 34 56 C, QQ123456C and ab123456d; not AB 12 34 56 or 12 34 56 C",
    # e-mail addresses and IBANs
    "mail ann.lee+x@example.co.uk or bob@example.org; not ann(at)example",
    "IBAN GB82 WEST 1234 5698 7654 32, DE89370400440532013000, gb82 west 1234 5698 7654 32",
    # digits of other scripts, which the `regex` module's tables may know better than `re`'s
    "card ٤١١١ ١١١١ ١١١١ ١١١١, date ١٢/٠٣/٢٠٢٤, ١٢٣-٤٥-٦٧٨٩",
    "card 4١١١ ١١١١ ١١١١ ١١١١, dates ٢٠٢٤/3/5, ٢٠٢٤-3-5 and MAR-٢٠٢٤",
    "full width ４１１１ １１１１ １１１１ １１１１ and １２/０３/２０２４",
    # prose with none of them
    "Please summarise the meeting notes and send them to the team before lunch.",
]


def test_presidio_pre_checks_skip_only_texts_their_patterns_cannot_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = RuleSet(SUPPORTED_ENTITIES)
    checked = {text: sorted_matches(rules.find(text)) for text in _PRESIDIO_FORMS}
    monkeypatch.setattr(recognizers, "_PRESIDIO_NEEDS", {})
    for text, found in checked.items():
        assert found == sorted_matches(rules.find(text)), text
    found_types = {m.entity_type for found in checked.values() for m in found}
    assert found_types >= set(recognizers._PRESIDIO_NEEDS)


@pytest.mark.parametrize("entity_type", sorted(recognizers._PRESIDIO_NEEDS))
def test_every_presidio_pattern_match_holds_what_its_pre_check_needs(entity_type: str) -> None:
    """Each pattern of the recognizer, on its own and in the `regex` module Presidio runs it
    with: where it matches, the pre-check does too."""
    rules = RuleSet(SUPPORTED_ENTITIES)
    recognizer = next(r for r in rules._presidio if r.supported_entities == [entity_type])
    needs = recognizers._PRESIDIO_NEEDS[entity_type]
    matched = 0
    for pattern in recognizer.patterns:
        for text in _PRESIDIO_FORMS:
            for match in regex.finditer(pattern.regex, text, recognizer.global_regex_flags):
                matched += 1
                assert needs.search(match.group()) is not None, (pattern.name, match.group())
    assert matched


_SPELLED_FORMS = [
    "john (at) example (dot) com",
    "john[at]example[dot]com and jane{AT}example{DOT}org",
    "write to john [@] example [.] com",
    "john at example dot com, JOHN AT EXAMPLE DOT COM",
    "john\tat\texample\tdot\tcom",
    "john at example [dot] com and ann <at> mail.example.org",
    "me at ann at x dot io",
    "the team at example.com; look at this dot com",
    "ann@example.org and nothing spelled",
    "a cat sat at the mat",
]


def test_spelled_addresses_are_looked_for_only_where_one_can_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def spelled(text: str) -> list[RuleMatch]:
        return list(spelled_emails.find_spelled_emails(text, known_email_domain))

    checked = {text: spelled(text) for text in _SPELLED_FORMS}
    monkeypatch.setattr(spelled_emails, "_CUE", re.compile(""))
    for text, found in checked.items():
        assert found == spelled(text), text
    assert sum(map(len, checked.values())) >= 7


_ADDRESS_FORMS = [
    "12 rue de Rivoli, Paris; Rua Augusta 274; Via Roma 12; via Email; Avenida Paulista, 1578",
    "Av. Paulista 1578, av Brasil 12, Avda. de la Constitución 3, al. Jerozolimskie 44",
    "piazzale Loreto 1, Piazza Navona 3, piazza Navona, C/ Mayor 5, ul. Marszałkowska 10",
    "Calle Mayor, 5; Carrer de Mallorca 401; Jl. Sudirman 5; Jalan Ampang 12; Plac Zamkowy 4",
    "Mannerheimintie 5, Hauptstr. 5, Hauptstraße 12, Van der Helststraat 12, De Ruyterkade 7",
    "Drottninggatan 53, Sveavägen 44, Sveaväg 44, Storgata 1, Nørregade 12, Karl Johans gate 3",
    "Hattie 5, Agata 3, Daniela 7, Kossuth Lajos utca 12., Vaci u. 5, Brivibas iela 21",
    "Konrad-Adenauer-Straße 1, Stuckistrasse, 221B Baker Street, London NW1 6XE",
    "In 2019, Park Avenue; 31 August 2009; On October 6; DOB April 22 Ab; 8 PM on 12/13/23",
    "Pagari 18, Tallinn; EUR 1,200; Studio 4B, 12 Main St; Apt 5, 3-15-2 Jingumae, Shibuya-ku",
    "VIA ROMA 12, RUA AUGUSTA 274, MANNERHEIMINTIE 5, 12 RUE DE RIVOLI",
    "via roma 12, rua augusta 274, mannerheimintie 5, 235 david cape suite 550",
]


def _flat(words: tuple[str, ...]) -> str:
    return "(?:" + "|".join(map(re.escape, words)) + ")"


def _without(pattern: re.Pattern[str], *replacements: tuple[str, str]) -> re.Pattern[str]:
    source = pattern.pattern
    for shortcut, plain in replacements:
        assert shortcut in source
        source = source.replace(shortcut, plain)
    return re.compile(source, pattern.flags)


def _matches(
    pattern: re.Pattern[str], text: str
) -> list[tuple[tuple[int, int], tuple[str | None, ...]]]:
    return [(m.span(), m.groups()) for m in pattern.finditer(text)]


_SHORTCUTS = [
    (
        addresses._ADDRESS_CORE,
        [
            (
                literal_alternation(addresses._LEADING_STREET_WORDS),
                _flat(addresses._LEADING_STREET_WORDS),
            ),
            (
                literal_alternation(addresses._WEAK_LEADING_STREET_WORDS),
                _flat(addresses._WEAK_LEADING_STREET_WORDS),
            ),
            (literal_alternation(addresses._STREET_ENDINGS), _flat(addresses._STREET_ENDINGS)),
        ],
        _ADDRESS_FORMS,
    ),
    (addresses._NAME_NUMBER, [(f"(?=[\\d{addresses.UPPER}])", "")], _ADDRESS_FORMS),
    (
        addresses._ADDRESS_CUE,
        [(r"\b(?=\w)", r"\b")],
        ["she lives at 12 Main St", "Address: 4 Elm Rd", "ship it to 221B Baker St", "at 5 pm"],
    ),
    (
        addresses._PLACE_CUE,
        [(r"\b(?=\w)", r"\b")],
        ["flew to Lisbon", "I'm in Porto", "moved to NEW YORK", "returned to LYCKSELE", "in Oslo"],
    ),
    (
        names._NAME_CUE,
        [(r"\b(?=[\w'’])", r"\b")],
        [
            "My name is Ann Lee. Dear Dr. Bob Smith, Sincerely,\nJane Roe",
            "Ann's name is Kim; Bill to: Ann Lee\nAcme Ltd; Attn: Raj Patel; met with Mr Lee",
            "Mit freundlichen Grüßen\nHans Meier; Atenciosamente,\nOtávio Prates",
        ],
    ),
    (
        names._LOWER_NAME_CUE,
        [(r"\b(?=\w)", r"\b")],
        ["my name is ann lee", "call me bob", "His name is tom van dijk", "my name's kim"],
    ),
    (
        dates._DATE,
        [(r"\b(?=[\dADFJMNOSTW])", r"\b")],
        [
            "Sun Oct 09 18:43:19 1983, 10/Oct/2024:13:55:36 +0000, 3rd day of March, 2024",
            "1985/07/23, 1967.08.21, 2024-03-05T10:20:30Z, Thursday, Dec 5th, 5 Jan 2020",
            "Mon-Fri 9-17, August 2009, on Wed., 3 March and 2024.1.2",
        ],
    ),
]


@pytest.mark.parametrize(
    ("pattern", "replacements", "texts"),
    _SHORTCUTS,
    ids=[f"{p.pattern[:30]}" for p, _, _ in _SHORTCUTS],
)
def test_guards_and_tries_match_what_the_plain_pattern_matches(
    pattern: re.Pattern[str], replacements: list[tuple[str, str]], texts: list[str]
) -> None:
    plain = _without(pattern, *replacements)
    variants = [form for text in texts for form in (text, text.lower(), text.upper())]
    for text in variants:
        assert _matches(pattern, text) == _matches(plain, text), text
    assert any(_matches(pattern, text) for text in variants)


def test_lower_case_dates_keep_their_guard() -> None:
    """The lower-case date pattern is the same pattern without case: its guard's letters
    match the lower-case month and weekday names as well."""
    plain = _without(dates._LOWER_CASE_DATE, (r"\b(?=[\dADFJMNOSTW])", r"\b"))
    text = "sun oct 09 18:43:19 1983, may 17, mon, mar 21, thursday, 3rd of march, 5 jan 2020"
    assert _matches(dates._LOWER_CASE_DATE, text) == _matches(plain, text)
    assert len(_matches(dates._LOWER_CASE_DATE, text)) >= 5


def sorted_matches(matches: Iterable[RuleMatch]) -> list[RuleMatch]:
    return sorted(matches, key=lambda m: (m.start, m.end, m.entity_type, m.score))


def test_a_person_span_the_prose_cut_leaves_whole_is_vetted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The NER's person span is vetted as a name, and again after `prose_cut` only where that
    cut it shorter: a span left whole was the same string vetted twice."""
    vetted: list[str] = []
    could_be_name = names.could_be_name

    def counted(value: str) -> bool:
        vetted.append(value)
        return could_be_name(value)

    monkeypatch.setattr(names, "could_be_name", counted)
    text = "Please ask Ann Lee and John drink tea."
    whole = recognizers._person_or_place(text, text.index("Ann"), text.index(" and"))
    assert whole == ("PERSON", text.index("Ann"), text.index(" and"))
    assert vetted == ["Ann Lee"]
    vetted.clear()
    cut = recognizers._person_or_place(text, text.index("John"), text.index(" tea"))
    assert cut == ("PERSON", text.index("John"), text.index(" drink"))
    assert vetted == ["John drink", "John"]
