"""Forms the development set does not hold, found by probing the guard with hand-written text:
IBANs of a country's registered length, identifiers and amounts that look like phones and
addresses, a URL password holding "&", an internationalized domain in CJK script and an
OpenPGP private key."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, patterns
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from smallfirst.privacy.normalize import normalized
from smallfirst.privacy.secrets import find_secrets
from tests.helpers import found_in, matched_texts


def _values(text: str, finder: patterns.RuleFinder) -> list[str]:
    return matched_texts(finder, text, min_score=DEFAULT_SCORE_THRESHOLD)


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        # a word after the IBAN whose first letters keep the check digits valid
        ("Pay to IBAN CZ35 3607 5983 8675 6508 8995 today.", "CZ35 3607 5983 8675 6508 8995"),
        ("Pay to IBAN SK32 3057 5953 0070 2480 0318 today.", "SK32 3057 5953 0070 2480 0318"),
        ("iban cz3536075983867565088995 today", "cz3536075983867565088995"),
    ],
)
def test_an_iban_of_a_registered_country_is_as_long_as_its_country_says(
    text: str, iban: str
) -> None:
    assert _values(text, patterns.find_ibans) == [iban]


def test_an_iban_of_the_wrong_length_for_its_country_is_none() -> None:
    # valid check digits, but a German IBAN has 22 characters, not 24
    assert patterns.iban_valid("DE783704004405320130001234")
    assert _values("IBAN DE78 3704 0044 0532 0130 0012 34", patterns.find_ibans) == []


@pytest.mark.parametrize(
    "iban",
    [
        "de66 3417 6848 7870 6524 70",
        "at25 6900 5929 2244 6962",
        "pl61 1090 1014 0000 0712 1981 2874",
    ],
)
def test_a_card_number_inside_a_lower_case_iban_is_part_of_the_iban(
    detector: PiiDetector, iban: str
) -> None:
    # each holds a Luhn-valid 16-digit run, which Presidio's card recognizer scores 1.0
    assert found_in(detector, f"send it to ({iban}).") == [("IBAN_CODE", iban)]


@pytest.mark.parametrize(
    "text", ["INV-2024-558213 is paid", "Case ID CS-00491823-22", "Order #A-100234-77 shipped"]
)
def test_digits_joined_to_a_word_by_a_hyphen_are_no_phone(text: str) -> None:
    assert _values(text, patterns.find_phone_numbers) == []


def test_phones_after_a_label_or_a_word_and_a_dot_are_still_phones() -> None:
    for text, phone in [
        ("call 030-1234567 now", "030-1234567"),
        ("Tel.0171 1234567", "0171 1234567"),
        ("mobile: +1-415-555-0134", "+1-415-555-0134"),
    ]:
        assert _values(text, patterns.find_phone_numbers) == [phone]


@pytest.mark.parametrize(
    "text", ["EUR 1,200 per month", "GBP 3,450.00 due", "Budget: USD 2,500,000 in total"]
)
def test_an_amount_with_a_thousands_separator_is_no_address(text: str) -> None:
    assert _values(text, addresses.find_addresses) == []


def test_a_street_name_and_house_number_before_a_postcode_is_still_an_address() -> None:
    text = "I live at Kalevi 12, 51010 Tartu"
    assert _values(text, addresses.find_addresses) == ["Kalevi 12, 51010 Tartu"]


def test_an_ampersand_in_a_url_password_separates_no_form_fields() -> None:
    text = "DSN=mysql://svc:Qz7&pw+9@db.local/app?ssl=1&pool=5"
    assert normalized(text).text == "DSN=mysql://svc:Qz7&pw+9@db.local/app?ssl=1 pool=5"


def test_a_url_password_holding_an_ampersand_is_found_whole(detector: PiiDetector) -> None:
    text = "DATABASE_URL=postgres://app:Kq4&zz91@db.internal:5432/prod"
    assert ("SECRET", "Kq4&zz91") in found_in(detector, text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("連絡先：yamada@例え.jp まで", "yamada@例え.jp"),
        ("邮箱是wang@例子.公司，谢谢", "wang@例子.公司"),
        ("mailto:kim@도메인.kr", "kim@도메인.kr"),
    ],
)
def test_an_address_with_a_domain_in_cjk_script_is_found(
    detector: PiiDetector, text: str, address: str
) -> None:
    assert ("EMAIL_ADDRESS", address) in found_in(detector, text)


def test_no_space_goes_between_cjk_script_and_an_at_sign_or_a_dot() -> None:
    assert normalized("写信到li@例子.公司吧").text == "写信到 li@例子.公司吧"


def test_an_openpgp_private_key_block_is_a_secret() -> None:
    block = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxcLYBGWq3zUBCAC7fake0key0body\n=Ab12\n"
        "-----END PGP PRIVATE KEY BLOCK-----"
    )
    text = f"my backup key:\n{block}\nthanks"
    assert matched_texts(find_secrets, text) == [block]
