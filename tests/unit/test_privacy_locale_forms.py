"""Forms of names, streets and companies of other locales: AS 4590 road types that are
everyday words, British studio flats, Dutch streets named after people with their
particles, Spanish "don"/"doña" titles, companies by their legal forms and partners, and the
words of other languages that the English NER reads as names."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, names, patterns, recognizers, vetoes
from smallfirst.privacy.detect import DEFAULT_SCORE_THRESHOLD
from tests.helpers import found_of_types, matched_texts


def _addresses(text: str) -> list[str]:
    return matched_texts(addresses.find_addresses, text, min_score=DEFAULT_SCORE_THRESHOLD)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Post it to 48 Kowalski Ramble, Hobart", "48 Kowalski Ramble, Hobart"),
        ("Office: 7/210 Okafor Tor\nGeelong, VIC 3220", "7/210 Okafor Tor\nGeelong, VIC 3220"),
        ("Drop-off at 3 Nguyen Quays", "3 Nguyen Quays"),
        ("Unit at 15 Ferreira Pocket, Ballarat VIC", "15 Ferreira Pocket, Ballarat VIC"),
        ("We live at 9 Lindqvist Edge\nMildura", "9 Lindqvist Edge\nMildura"),
    ],
)
def test_as4590_road_types_that_are_everyday_words(text: str, address: str) -> None:
    assert _addresses(text) == [address]


@pytest.mark.parametrize(
    "text",
    [
        "Follow these 3 Easy Steps, then relax.",
        "Buy 2 Spring Break tickets now.",
        "He scored in the 4 Final Round matches.",
        "See chapter 12 Tor for details.",  # no name before the type
    ],
)
def test_everyday_words_after_a_number_stay_no_street(text: str) -> None:
    assert _addresses(text) == []


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("Studio 7B\n14 Harlow Road\nLeeds", "Studio 7B"),
        ("Resident: Studio 12, Marsh Lane, Bristol", "Studio 12"),
        ("Moving into Studio 3 at 22 Quay Street today", "Studio 3"),
    ],
)
def test_british_studio_flats(text: str, unit: str) -> None:
    assert any(found.startswith(unit) for found in _addresses(text))


@pytest.mark.parametrize(
    "text",
    ["Visual Studio 2022 crashes on start.", "Record it in Studio 5 after lunch."],
)
def test_a_studio_that_is_no_flat(text: str) -> None:
    assert _addresses(text) == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Adres: Van der Helststraat 14, Utrecht", "Van der Helststraat 14, Utrecht"),
        ("Stuur het naar van 't Hoffplein 3", "van 't Hoffplein 3"),
        ("Kantoor: De Ruyterkade 120\n1011 AB Amsterdam", "De Ruyterkade 120\n1011 AB Amsterdam"),
        (
            "Post: ter Horstlaan 8, 5211 AA 's-Hertogenbosch",
            "ter Horstlaan 8, 5211 AA 's-Hertogenbosch",
        ),
    ],
)
def test_dutch_streets_named_after_people_keep_their_particles(text: str, address: str) -> None:
    assert _addresses(text) == [address]


def test_a_lower_case_article_before_a_dutch_street_stays_out() -> None:
    assert _addresses("We wonen in de Kalverstraat 12.") == ["Kalverstraat 12"]


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("Estimado D. Gutiérrez, le escribo por su reclamación.", "Gutiérrez"),
        ("Estimada Sra. Dña. Lucía Ferrer:\nAdjunto el contrato.", "Lucía Ferrer"),
        ("Apreciado Sr. D. Tomás Vidal:\nLe escribimos hoy.", "Tomás Vidal"),
        ("Atentamente,\nDoña Carmen Rius", "Carmen Rius"),
    ],
)
def test_spanish_don_titles_are_no_part_of_the_name(
    detector: PiiDetector, text: str, person: str
) -> None:
    assert found_of_types(detector, text, "PERSON") == [person]


def test_a_lone_initial_is_no_name() -> None:
    assert not names.could_be_name("D.")
    assert names.could_be_name("Di")


@pytest.mark.parametrize(
    ("text", "span", "name"),
    [
        ("Por la presente se comunica", "Por la presente", None),  # a sentence's opening
        ("Mijn nieuwe adres is", "Mijn nieuwe adres", None),
        ("Please send the invoice to david cape by Friday.", "david cape", "david cape"),
        ("Meeting with john smith at 3pm.", "john smith", "john smith"),
        ("shown by Leydimere Okoro et al. in", "Leydimere Okoro et al.", "Leydimere Okoro"),
        ("How much did Kwame drink", "Kwame drink", "Kwame"),
        ("written by Peter of Abano", "Peter of Abano", "Peter of Abano"),
        ("met Ana María de la Cruz", "Ana María de la Cruz", "Ana María de la Cruz"),
        ("my name is ana lópez", "ana lópez", "ana lópez"),  # a text all in lower case
        ("Please ask john about the API", "john", "john"),  # one word may be a name
        ("Can you ask maria lopez about the VPN?", "maria lopez", "maria lopez"),
    ],
)
def test_prose_read_into_a_name(text: str, span: str, name: str | None) -> None:
    start = text.index(span)
    end = recognizers.prose_cut(text, start, start + len(span))
    assert (None if end is None else text[start:end]) == name


@pytest.mark.parametrize(
    ("text", "company"),
    [
        ("Order from Pérez e Hijos arrived", "Pérez"),
        ("Our partner Moreau et Fils ships on Monday", "Moreau"),
        ("Send it to Ferri, Longo e Conti S.r.l. today", "Ferri"),
        ("Quote from Vidal y Soler S.L. received", "Vidal"),
        ("We bought from Okafor, Mensah and Boateng Ltd last year", "Mensah"),
        ("Audit by Rossi, Bianchi e Greco Group finished", "Rossi"),
        ("Supplier Azevedo Comércio Ltda. called", "Azevedo Comércio"),
    ],
)
def test_a_name_in_a_firm_with_a_legal_form_is_a_company(text: str, company: str) -> None:
    start = text.index(company)
    assert vetoes.names_a_thing(text, start, start + len(company))


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("Microsoft CEO Ana Lee, Oracle Corporation founder", "Ana Lee"),  # no "and"
        ("Collis, Hamilton and Reeves met us", "Collis"),  # no legal form
        ("Janette Fils called", "Janette"),
    ],
)
def test_people_beside_companies_stay_people(text: str, person: str) -> None:
    start = text.index(person)
    assert not vetoes.names_a_thing(text, start, start + len(person))


def test_family_firm_words_need_their_own_word() -> None:
    assert patterns.COMPANY_FORM.search("Janette Fils") is None
    assert patterns.COMPANY_FORM.search("Lemaire et Fils") is not None
