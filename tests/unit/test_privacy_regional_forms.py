"""Forms of business text written outside the US: phone numbers with the country code in
brackets, Brazilian, Portuguese, Spanish, Italian, Indian and Australian addresses, invoice
labels, greetings, sign-offs and titles of other languages, and things named after their
discoverers."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, patterns
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from tests.helpers import found_in, matched_texts


def _phones(text: str) -> list[str]:
    return matched_texts(patterns.find_phone_numbers, text, min_score=DEFAULT_SCORE_THRESHOLD)


def _addresses(text: str) -> list[str]:
    return matched_texts(addresses.find_addresses, text, min_score=DEFAULT_SCORE_THRESHOLD)


@pytest.mark.parametrize(
    "number",
    ["(+44) 07700 900461", "(+49) 040/5550127", "(+61) 2 5550 1234", "(+351) 21 555 0142"],
)
def test_a_country_code_in_brackets_is_part_of_the_number(number: str) -> None:
    assert _phones(f"Reception: {number}, ask for Bea.") == [number]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Entrega: Viela Souza, 12, 04538-132 São Paulo / SP",
            "Viela Souza, 12, 04538-132 São Paulo / SP",
        ),
        (
            "Office at Rotonda Garibaldi, 4, 20121 Milano (MI)",
            "Rotonda Garibaldi, 4, 20121 Milano (MI)",
        ),
        ("Sheep graze along Cañada Honda all year", "Cañada Honda"),
        ("Visit H.No. 42, Gandhi Marg, Pune 411001", "H.No. 42, Gandhi Marg, Pune 411001"),
        ("Drop at 17, Shastri Nagar, Jaipur", "17, Shastri Nagar, Jaipur"),
        ("Mail Unit 9/31 Kent Laneway, Perth WA 6000", "Unit 9/31 Kent Laneway, Perth WA 6000"),
        ("Moradia: Travessa Lima, S/N, Faro", "Travessa Lima, S/N, Faro"),
        (
            "Rua Bela, 9\nCentro\n01310-200 Recife / PE",
            "Rua Bela, 9\nCentro\n01310-200 Recife / PE",
        ),
    ],
)
def test_street_types_units_and_postcodes_of_other_countries(text: str, address: str) -> None:
    assert _addresses(text) == [address]


def test_a_weak_street_type_makes_a_street_with_a_house_number() -> None:
    assert _addresses("Pickup: Parque Ibirapuera, 88 today") == ["Parque Ibirapuera, 88"]
    assert _addresses("We met in Parque Ibirapuera at noon") == []


def test_a_sentence_on_the_next_line_ends_the_address() -> None:
    text = "Address:\nRua Bela, 9\n01310-200 Recife\nVAT number to follow."
    assert _addresses(text) == ["Rua Bela, 9\n01310-200 Recife"]
    # a place name with a lower-case link goes on
    assert _addresses("Address:\nMainzer Weg 3\nFrankfurt am Main") == [
        "Mainzer Weg 3\nFrankfurt am Main"
    ]


def test_opening_hours_are_no_address() -> None:
    assert _addresses("Our office is open Mon-Fri 9-17 and Sat 10-14.") == []


@pytest.mark.parametrize("text", ["Bill to: 12 Baker Street, London", "Tel: (+49) 040/5550127"])
def test_invoice_labels_are_no_names(detector: PiiDetector, text: str) -> None:
    people = [value for kind, value in found_in(detector, text) if kind == "PERSON"]
    assert not any(value in ("Bill", "Tel", "Ship") for value in people)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "Bill to: Ann Lee\nShip to: Bob Stone\nRemit to: Carla Diaz\n",
            ["Ann Lee", "Bob Stone", "Carla Diaz"],
        ),
        ("Contact: Maria\nTel: (+49) 030 6563456", ["Maria"]),
    ],
)
def test_a_name_above_an_invoice_label_is_still_a_name(
    detector: PiiDetector, text: str, names: list[str]
) -> None:
    # the NER reads "Ann Lee\nShip" as one span: the label's veto is not the name's
    people = [value for kind, value in found_in(detector, text) if kind == "PERSON"]
    assert people == names


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "Hallo Wiebke,\n\ndie Rechnung ist angehängt.\n\nMit freundlichen Grüßen\nJörg Brandt",
            ["Wiebke", "Jörg Brandt"],
        ),
        (
            "Bonjour Amélie,\n\nvoici le devis.\n\nCordialement,\nLucien Faure",
            ["Amélie", "Lucien Faure"],
        ),
        (
            "Prezado Dra. Macedo,\n\nsegue a fatura.\n\nAtenciosamente,\nOtávio Prates",
            ["Macedo", "Otávio Prates"],
        ),
        (
            "Dear Ms Okafor,\n\nplease see the attached.\n\nKind regards,\nTom Ede",
            ["Okafor", "Tom Ede"],
        ),
    ],
)
def test_greetings_sign_offs_and_titles_are_not_part_of_names(
    detector: PiiDetector, text: str, names: list[str]
) -> None:
    people = sorted(value for kind, value in found_in(detector, text) if kind == "PERSON")
    assert people == sorted(names)


@pytest.mark.parametrize("title", ["Dott.ssa", "Dhr.", "Smt.", "Maître", "Shri", "Dra."])
def test_titles_of_other_languages_cue_a_name(detector: PiiDetector, title: str) -> None:
    text = f"I spoke with {title} Okonkwo yesterday about the renewal."
    assert ("PERSON", "Okonkwo") in found_in(detector, text)
    assert not any(title.rstrip(".") in value for _, value in found_in(detector, text))


@pytest.mark.parametrize(
    "text",
    [
        "Explain the Calvin cycle to a ten-year-old.",
        "How does the Krebs cycle make NADH?",
        "Why does Dijkstra's algorithm fail with negative edges?",
        "What does Murphy's law say about deadlines?",
        "When is the Heimlich manoeuvre used?",
    ],
)
def test_things_named_after_discoverers_are_no_people(detector: PiiDetector, text: str) -> None:
    assert [kind for kind, _ in found_in(detector, text) if kind == "PERSON"] == []


def test_a_discovery_after_a_possessive_is_no_person_but_a_persons_things_are(
    detector: PiiDetector,
) -> None:
    assert ("PERSON", "Pauli") not in found_in(detector, "Is Pauli's principle a law?")
    text = "Can you summarise Priya Raman's test results for the clinic?"
    assert ("PERSON", "Priya Raman") in found_in(detector, text)
    # things are named after a surname alone: a whole name's disease is the person's own
    text = "Patient Maria Lopez's disease has progressed since March."
    assert ("PERSON", "Maria Lopez") in found_in(detector, text)


def test_a_department_is_no_place(detector: PiiDetector) -> None:
    text = "Please forward the contract to Ms Okafor in Legal."
    assert ("LOCATION", "Legal") not in found_in(detector, text)
    assert ("PERSON", "Okafor") in found_in(detector, text)
