"""Text styles and cultures the development set does not hold: names written with the letters
of Vietnamese, Romanian and Ukrainian, names and places in code, JSON and tables, form fields
that are no dialogue, addresses as Brazil, Japan, France and Poland write them, timestamps of
chats and logs, and the parties of a contract. Every sentence was written for these tests."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, dates, fields, names, patterns
from tests.helpers import found_in


def _matches(text: str, finder: patterns.RuleFinder) -> list[tuple[str, str]]:
    return [(m.entity_type, text[m.start : m.end]) for m in finder(text)]


def _of_type(detector: PiiDetector, text: str, entity_type: str) -> list[str]:
    return [value for kind, value in found_in(detector, text) if kind == entity_type]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("I talked to Phạm Minh Đức about the rota.", "Phạm Minh Đức"),  # Latin Extended Additional
        ("Dear Ștefan Bălănescu, thank you.", "Ștefan Bălănescu"),  # Latin Extended-B
        ("Dear Їржина Євтушенко, thank you.", "Їржина Євтушенко"),  # Ukrainian Cyrillic
    ],
)
def test_names_in_the_letters_of_more_languages_are_found_whole(text: str, name: str) -> None:
    assert ("PERSON", name) in _matches(text, names.find_cued_names)


def test_a_form_field_is_no_dialogue_speaker_while_a_speaker_still_is() -> None:
    assert _matches("Guarantor: Farah Idris.\nProvince: QC", names.find_acting_names) == []
    assert _matches("Maya: Where were you last night?", names.find_acting_names) == [
        ("PERSON", "Maya")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('log.info("refund", customer="Ines Albrecht")', [("PERSON", "Ines Albrecht")]),
        ('{"first_name": "Chidi", "last_name": "Okwu"}', [("PERSON", "Chidi"), ("PERSON", "Okwu")]),
        (
            'row = {"patientName": "Marta Kos", "city": "Ljubljana"}',
            [("PERSON", "Marta Kos"), ("LOCATION", "Ljubljana")],
        ),
        ('user = User(name="Hoang Lan Chi")', [("PERSON", "Hoang Lan Chi")]),
        # a bare "name" names things as often: one word, or a phrase of lower-case words
        ('steps:\n  - name: "Build and test"\n  - name: "Deploy"', []),
        ('{"name": "Production", "company_name": "Globex Ltd"}', []),
    ],
)
def test_the_value_of_a_field_named_for_a_person_or_place_is_one(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert _matches(text, fields.find_field_values) == expected


def test_cells_under_a_person_or_place_header_are_names_and_places() -> None:
    table = "id;surname;given_name;town\n7;van Leeuwen;Sanne;Utrecht\n8;Obi;Ada;Enugu"
    assert _matches(table, fields.find_field_values) == [
        ("PERSON", "van Leeuwen"), ("PERSON", "Sanne"), ("LOCATION", "Utrecht"),
        ("PERSON", "Obi"), ("PERSON", "Ada"), ("LOCATION", "Enugu"),
    ]  # fmt: skip
    markdown = "| Field | Value |\n|---|---|\n| Full name | Kalinda Rao |\n| Plan | Gold |"
    assert _matches(markdown, fields.find_field_values) == [("PERSON", "Kalinda Rao")]
    assert (
        _matches("| Product | Price |\n|---|---|\n| Widget Pro | 9.99 |", fields.find_field_values)
        == []
    )


def test_a_form_gives_its_city_and_the_addressee_above_a_street() -> None:
    form = "City: Winnipeg\nCountry: Canada\nStatus: Active"
    assert _matches(form, fields.find_field_values) == [
        ("LOCATION", "Winnipeg"), ("LOCATION", "Canada")
    ]  # fmt: skip
    block = "Shipping address: Ruth Abebe\n  14 Larch Lane\n  Leeds"
    assert ("PERSON", "Ruth Abebe") in _matches(block, fields.find_field_values)
    assert _matches("Shipping address: Leeds", fields.find_field_values) == [("LOCATION", "Leeds")]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Entrega: Rua Bahia, 212, apto 31, Higienópolis, São Paulo - SP, 01244-000",
            "Rua Bahia, 212, apto 31, Higienópolis, São Paulo - SP, 01244-000",
        ),
        ("Av. Brasil, 5000 - Bonsucesso", "Av. Brasil, 5000 - Bonsucesso"),
        (
            "Office: 4-12-8 Hiroo, Shibuya-ku, Tokyo 150-0012",
            "4-12-8 Hiroo, Shibuya-ku, Tokyo 150-0012",
        ),
        ("Envoyer au 9 place Carnot, 21000 Dijon", "9 place Carnot, 21000 Dijon"),
        ("Adres: ul. Polna 12 m. 4\n00-635 Warszawa", "ul. Polna 12 m. 4\n00-635 Warszawa"),
        ("Send it to 5 Heol y Bont, Swansea SA1 2AB please", "5 Heol y Bont, Swansea SA1 2AB"),
        # a parenthesis that is no place's ends the address
        ('at Calle Luna 3, 28004 Madrid ("the Flat").', "Calle Luna 3, 28004 Madrid"),
    ],
)
def test_addresses_as_other_countries_write_them_are_found_whole(text: str, address: str) -> None:
    assert ("LOCATION", address) in _matches(text, addresses.find_addresses)


def test_an_address_ends_where_a_labelled_field_begins() -> None:
    form = "Line 1: Flat 2\nLine 2: 18 Mill Road\nTown: Ely"
    assert _matches(form, addresses.find_addresses) == [
        ("LOCATION", "Flat 2"), ("LOCATION", "18 Mill Road")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("CEP 04538-133", []),  # a Brazilian postcode
        ("Send me your number\n2024-11-02 17:45 ok, sent", []),  # a chat's timestamp
        ("Replacement part number 7731-0042-B is in stock", []),
        ("Call 0161 496 0018-Office today", ["0161 496 0018"]),
    ],
)
def test_postcodes_timestamps_and_part_numbers_are_no_phones(
    detector: PiiDetector, text: str, phones: list[str]
) -> None:
    assert _of_type(detector, text, "PHONE_NUMBER") == phones


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Geboren 1990/4/9 in Osaka", ["1990/4/9"]),
        ("DOB 1971.12.30", ["1971.12.30"]),
        (
            '1.2.3.4 - - [07/Mar/2025:08:15:02 +0100] "GET / HTTP/1.1"',
            ["07/Mar/2025:08:15:02 +0100"],
        ),
        ("Apr 2 23:59:01 host cron[99]: job done", ["Apr 2 23:59:01"]),
        ("[17:05] Ana: on my way", ["17:05"]),
        ("The call moved to 3:30 pm.", ["3:30 pm"]),
        ("Witnessed on the 2nd day of May, 2021.", ["2nd day of May, 2021"]),
        ("Upgrade to 2024.1.2 with a 16:9 screen", []),
        ("Read John 3:16 again", []),
    ],
)
def test_dates_and_times_of_logs_chats_and_deeds(text: str, found: list[str]) -> None:
    assert [value for _, value in _matches(text, dates.find_dates)] == found


def test_a_second_full_name_joined_by_and_is_a_person() -> None:
    text = "Oyelaran Bamidele and Kemi Adeyemi-Bello signed it."
    known = [(0, len("Oyelaran Bamidele"))]
    start = text.index("Kemi")
    assert [(m.start, m.end) for m in names.names_in_lists(text, known)] == [
        (start, start + len("Kemi Adeyemi-Bello"))
    ]
    assert list(names.names_in_lists("Mia Wong and Acme Support met.", [(0, 8)])) == []


@pytest.mark.parametrize(
    ("text", "people"),
    [
        ("Tel. +44 20 7946 0321 (reception)", []),
        ("Fone: (21) 3456-7890", []),
        ("The Lessee shall pay the deposit.", []),
        ("Dear Fr. Tomasz Lis, the hall is booked.", ["Tomasz Lis"]),
        ("Signed by Adunni Olatunji on behalf of the board.", ["Adunni Olatunji"]),
        ("| Owner | Kwesi Appiah |", ["Kwesi Appiah"]),
    ],
)
def test_labels_roles_and_titles_are_no_names(
    detector: PiiDetector, text: str, people: list[str]
) -> None:
    assert _of_type(detector, text, "PERSON") == people
