"""The plain-Python rule matchers, and that importing the guard stays light."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from smallfirst.privacy import addresses, dates, patterns
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from smallfirst.privacy.secrets import find_secrets
from tests.helpers import matched_texts


def _values(text: str, finder: patterns.RuleFinder) -> list[str]:
    return matched_texts(finder, text, min_score=DEFAULT_SCORE_THRESHOLD)


def test_multi_line_address_is_one_location() -> None:
    text = "Ship it to 6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677\nMobile: 555"
    assert _values(text, addresses.find_addresses) == [
        "6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677"
    ]


def test_abbreviated_german_streets_and_hungarian_house_numbers() -> None:
    text = "Ship to Hauptstr. 5, 10115 Berlin please"
    assert _values(text, addresses.find_addresses) == ["Hauptstr. 5, 10115 Berlin"]
    text = "Meet me at 1798 Eichendorffstr. 31\n Suite 426\n Emmingen-Liptingen\n Germany"
    assert _values(text, addresses.find_addresses) == [text.removeprefix("Meet me at ")]
    text = "Sjanne\n059 Nánási út 79. Apt. 246, Pomáz, Hungary 70951\n0494 26 46 14 office"
    assert _values(text, addresses.find_addresses) == [
        "059 Nánási út 79. Apt. 246, Pomáz, Hungary 70951"
    ]
    assert _values("Wohnt in der Bahnhofstr. 12.", addresses.find_addresses) == ["Bahnhofstr. 12"]


def test_address_stops_before_a_phone_line() -> None:
    text = "515 Gemsbok St\n Pietersburg 89082\n085 175 7641"
    assert _values(text, addresses.find_addresses) == ["515 Gemsbok St\n Pietersburg 89082"]


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
    assert _values(text, addresses.find_addresses) == [
        "9542 Main Street Suite 865\nGossau, Switzerland 97242"
    ]


def test_luhn_cards_and_lower_case_iban() -> None:
    assert _values("card 630427373398 ok", patterns.find_card_numbers) == ["630427373398"]
    assert _values("card 630427373399 ok", patterns.find_card_numbers) == []
    assert _values("my iban is gb42nawi04454264788619", patterns.find_ibans) == [
        "gb42nawi04454264788619"
    ]


def test_explicit_dates_versus_durations() -> None:
    assert dates.is_explicit_date("Thursday")
    assert dates.is_explicit_date("9/19/1963")
    assert not dates.is_explicit_date("next week")
    assert not dates.is_explicit_date("8+ years")


def test_iso_timestamps_are_one_date_with_fraction_and_offset() -> None:
    text = "at 2023-01-18 14:07:12.320874, 2024-05-01T09:30:00Z or 2024-05-01T09:30:00+02:00."
    assert _values(text, dates.find_dates) == [
        "2023-01-18 14:07:12.320874", "2024-05-01T09:30:00Z", "2024-05-01T09:30:00+02:00"
    ]  # fmt: skip
    assert _values("on 2000-04-16 at 11:34, SSN 123-45-6789", dates.find_dates) == ["2000-04-16"]


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
    assert _values("Aniela is very reliable.", addresses.find_addresses) == []
    assert _values("Write to Hattie or Agata.", addresses.find_addresses) == []
    assert _values("It is at Mannerheimintie 5.", addresses.find_addresses) == ["Mannerheimintie 5"]
    assert _values("sent via Email today", addresses.find_addresses) == []


def test_units_and_place_name_links_stay_in_the_address() -> None:
    text = "at 6556 106 Rue Ettatawer Apt. 409\nSOUTH NEWDEGATE, WA 16469"
    assert _values(text, addresses.find_addresses) == [
        "6556 106 Rue Ettatawer Apt. 409\nSOUTH NEWDEGATE, WA 16469"
    ]
    text = "4596 Tylova 285\n Suite 578\n Ostrov nad Ohrí\n Czech Republic 56655"
    assert _values(text, addresses.find_addresses) == [text]


def test_numbers_named_as_other_identifiers_are_not_phones() -> None:
    assert _values("my driver's license number is 2270-66-1551", patterns.find_phone_numbers) == []
    assert _values("order no. 5130634 shipped", patterns.find_phone_numbers) == []
    assert _values("call 212-555-0199 about it", patterns.find_phone_numbers) == ["212-555-0199"]


def test_secrets_are_found_only_where_their_marker_is() -> None:
    text = "key=sk-live-abcdefghijklmnop1234 and password: hunter2hunter2"
    expected = ["sk-live-abcdefghijklmnop1234", "hunter2hunter2"]
    assert _values(text, find_secrets) == expected
    assert _values("no keys in this sentence", find_secrets) == []


def test_literal_alternation_prefers_the_longest_word() -> None:
    import re

    words = ["Mali", "Malta", "Malaysia", "Niger", "Nigeria", "Guinea", "Guinea-Bissau"]
    pattern = re.compile(rf"(?<!\w){patterns.literal_alternation(words)}(?!\w)")
    text = "Malaysia, Mali, Malta, Nigeria, Niger, Guinea-Bissau, Guinean, Guinea."
    assert pattern.findall(text) == [
        "Malaysia", "Mali", "Malta", "Nigeria", "Niger", "Guinea-Bissau", "Guinea"
    ]  # fmt: skip


ONE_DIGIT_AREA_CODES = [
    "+33 1 42 68 53 00", "+33 6 12 34 56 78", "+31 6 12345678", "+353 1 234 5678",
    "+46 8 123 456 78", "+32 2 123 45 67", "+61 2 9876 5432", "+61 4 1234 5678",
    "+81 3-1234-5678", "+972 3 123 4567", "+64 9 123 4567", "+43 1 234567", "+358 9 1234567",
    "+420 2 1234 5678",
]  # fmt: skip


@pytest.mark.parametrize("number", ONE_DIGIT_AREA_CODES)
def test_a_one_digit_area_code_after_the_country_code(number: str) -> None:
    assert _values(f"Reach me on {number} after six.", patterns.find_phone_numbers) == [number]


def test_a_one_digit_group_needs_a_country_code_and_enough_digits() -> None:
    assert _values("dial +33 1 42 now", patterns.find_phone_numbers) == []  # five digits
    assert _values("steps 1 2 3 4 5 6 7 8", patterns.find_phone_numbers) == []


GAPS = ["\u00a0", "\u202f", "\u2009", "\u2007", "  "]


@pytest.mark.parametrize("gap", GAPS, ids=["nbsp", "narrow", "thin", "figure", "double"])
def test_groups_apart_by_non_breaking_thin_or_double_spaces(gap: str) -> None:
    card = gap.join(["4539", "1488", "0343", "6467"])
    assert _values(f"card {card} exp 09/27", patterns.find_card_numbers) == [card]
    phone = gap.join(["+44", "20", "7946", "0958"])
    assert _values(f"call {phone} today", patterns.find_phone_numbers) == [phone]
    iban = gap.join(["GB82", "WEST", "1234", "5698", "7654", "32"])
    assert _values(f"IBAN {iban}.", patterns.find_ibans) == [iban]


def test_card_groups_between_dots_but_not_decimals_or_wide_gaps() -> None:
    for card in ("4539.1488.0343.6467", "4242.4242.4242.4242"):
        assert _values(f"card {card} ok", patterns.find_card_numbers) == [card]
    assert _values("pi is 3.1415926535897932", patterns.find_card_numbers) == []
    assert _values("card 4539.14.880343.6467 ok", patterns.find_card_numbers) == []
    assert _values("4539   1488   0343   6467", patterns.find_card_numbers) == []  # columns
    assert _values("card 0000 0000 0000 0000", patterns.find_card_numbers) == []


FOUND_SECRETS = [
    ("DB_PASSWORD=xK9mL2vQzz81", "xK9mL2vQzz81"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY\nregion = eu-west-1",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"),
    ("GITHUB_TOKEN=q1w2e3r4t5y6u7i8o9p0", "q1w2e3r4t5y6u7i8o9p0"),
    ("MY_SERVICE_API_KEY=q8w7e6r5t4y3u2i1", "q8w7e6r5t4y3u2i1"),
    ("client_secret=Zx9Yw8Vu7Ts6&grant_type=client_credentials", "Zx9Yw8Vu7Ts6"),
    ("PGPASSWORD=s3cretpw psql -h db", "s3cretpw"),
    ("pwd=x8Gk2pQz", "x8Gk2pQz"),
    ("GET /login?user=admin&pass=S3cret1&next=/", "S3cret1"),
    ("SMTP_PASS=Xy7!kq2Lm", "Xy7!kq2Lm"),
    ("const clientSecret: 'AbC123xyz'", "AbC123xyz"),
    ("X-Api-Key: 8f7a6b5c4d3e2f1a0b9c", "8f7a6b5c4d3e2f1a0b9c"),
    ('{"password": "p@ssW0rd!2024"}', "p@ssW0rd!2024"),
    ('{"api_key": "abcd1234efgh5678ijkl"}', "abcd1234efgh5678ijkl"),
    ('"{\\"password\\": \\"p@ss w0rd\\"}"', "p@ss w0rd"),
    ('{"password": "ab\\"cd12345"}', 'ab\\"cd12345'),  # escapes inside: one value
    ('"{\\"password\\": \\"Hunter2\\\\\\"x\\"}"', 'Hunter2\\\\\\"x'),
    ('db:\n  password: "x"\n', "x"),
    ("password=hunter2.", "hunter2"),
    ("Server=db;User Id=sa;Password=Str0ngPa55;Database=shop", "Str0ngPa55"),
    ("postgres://admin:S3cr3tPa55@db.internal:5432/app", "S3cr3tPa55"),
    ("postgresql://bob:hunter2@10.1.2.3/prod", "hunter2"),
    ("redis://:mySuperSecret123@redis-host:6379/0", "mySuperSecret123"),
    ("mysql://root:toor@localhost:3306/shop", "toor"),
    ("amqp://guest:Gu3st!Pass@rabbit:5672/", "Gu3st!Pass"),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ("curl -u admin:S3cret! https://api.example.com/v1", "S3cret!"),
    ("POST to https://hooks.slack.com/services/T000/B000/XXXX now", "T000/B000/XXXX"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "secret"), FOUND_SECRETS)
def test_secrets_by_what_surrounds_them(text: str, secret: str) -> None:
    assert _values(text, find_secrets) == [secret]


NOT_SECRETS = [
    "max_tokens=1024, temperature=0.2",
    '"token_type": "bearer", "expires_in": 3600',
    "secretName: db-credentials",
    "bypass=true",
    "TOKEN_LIMIT=4096",
    "passwordless=enabled",
    "def login(username: str, password: str) -> bool:",
    "password = os.environ['DB_PASSWORD']",
    "token = self.token",
    "new_password = request.form['password']",
    "PASSWORD=${DB_PASSWORD}",
    "token: ${{ secrets.GITHUB_TOKEN }}",
    '"unk_token": "[UNK]", "eos_token": "</s>"',
    '"password": "string"',
    "password: ********",
    "if password == 'admin':",
    "Password: expired yesterday",
    "Use Basic authentication for the API",
    "docker run -u 1000:1000 image",
    'curl -u "$USER:$PASS" https://api.example.com',
    "https://example.com:8080/path and ssh://git@github.com:22/org/repo",
    "--- PASS: TestLoginHandler (0.00s)",
    "PWD=/home/ann/project\nOLDPWD=/home/ann",
    "SyntaxError: Unexpected token: 'function'",
    "session_token: abcdefgh",  # a key or token is random: a digit, or sixteen characters
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_names_types_references_and_prose_near_secrets_are_not_secrets(text: str) -> None:
    assert _values(text, find_secrets) == []


def test_versions_are_neither_dates_nor_addresses() -> None:
    text = "Java 17.0.10+7 LTS on Ubuntu 22.04.4 LTS, and 1.2.10.4"
    assert _values(text, dates.find_dates) == []
    assert _values(text, addresses.find_addresses) == []
    assert _values("born 17.03.1985, due 1.2.10", dates.find_dates) == ["17.03.1985", "1.2.10"]
    assert _values("She lives at Pagari 18. Come by!", addresses.find_addresses) == ["Pagari 18"]


# Faker en_US's formats (the generator of Presidio-style synthetic sets), other countries'
# trunk prefixes and separators, and dashes as word processors write them.
WHOLE_PHONES = [
    "001-774-803-5343x2235",  # the extension's digits do not count towards 15
    "+1-792-646-9973x65350",
    "1-758-564-4390",
    "1 (727) 818-7939",
    "8 (994) 207-1939",
    "030/1234567",
    "(800) 555\u20110199",
    "415\u2013555\u20130199",
]


@pytest.mark.parametrize("number", WHOLE_PHONES)
def test_phone_numbers_are_found_whole(number: str) -> None:
    assert _values(f"Call me at {number} tonight.", patterns.find_phone_numbers) == [number]


def test_context_after_a_bare_number_and_ssn_spacing() -> None:
    assert _values("9846287346 is my mobile", patterns.find_phone_numbers) == ["9846287346"]
    assert _values("I tried 9608520765 once", patterns.find_phone_numbers) == []  # no context
    assert _values("My SSN is 512 44 7023", patterns.find_phone_numbers) == []


def test_an_iban_followed_by_a_word_is_not_read_into_it() -> None:
    text = "iban es5583062759463066684063 for the deposit, PH119458073021573681 please"
    assert _values(text, patterns.find_ibans) == [
        "es5583062759463066684063",
        "PH119458073021573681",
    ]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "He lives at 123 Main Street, Springfield and works at the local bank.",
            "123 Main Street, Springfield",
        ),
        (
            "Ship it to 45 Rue de la Paix, 75002 Paris and call me after.",
            "45 Rue de la Paix, 75002 Paris",
        ),
        ("He lives at 74678 midtvollen 130 st. but not for long", "74678 midtvollen 130 st"),
    ],
)
def test_an_announced_address_ends_where_the_next_clause_begins(text: str, address: str) -> None:
    """It ran on to the end of the sentence ("... Springfield and works at the local bank")."""
    assert _values(text, addresses.find_cued_addresses) == [address]


@pytest.mark.parametrize("unit", ["A'", "Aa-", "A’", "A'-"])
def test_words_joined_by_apostrophes_or_hyphens_are_read_once(unit: str) -> None:
    """A capitalised word joined by apostrophes or hyphens was read again from each of its
    letters: 80,000 characters took 130-270 s (20,000: 11-17 s), every other scan waiting;
    now ~0.3 s. The bound is a hang guard far from both, not a performance number."""
    import time

    text = unit * (80_000 // len(unit))
    started = time.perf_counter()
    list(addresses.find_addresses(text))
    assert time.perf_counter() - started < 20.0
    # what keeps it linear: no match starts inside such a word
    start = re.compile(addresses._ADDRESS_START + "[A-Z]")
    assert [m.start() for m in start.finditer("Aa-Bb O'Neill 'Cc -Dd")] == [0, 6, 15, 19]


def test_an_address_may_open_after_a_quote_or_a_dash() -> None:
    for text in ("Send it to '12 Baker Street' today", "Send it to -12 Baker Street today"):
        assert _values(text, addresses.find_addresses) == ["12 Baker Street"]
    assert _values("Meet at O'Connell Street 5 now", addresses.find_addresses)
