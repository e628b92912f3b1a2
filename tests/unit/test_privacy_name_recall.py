"""Names the guard used to miss: surnames with particles ("Pieter de Vries"), hyphenated given
names and O'/Mc surnames ("Anne-Marie O'Neill"), lone given names that are the object of
a verb done to people ("Call Ana at 5pm") or greeted ("Hi Efimiya, ..."). Each found whole,
next to near misses that must stay clean. Every sentence was written for these tests."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, names
from smallfirst.privacy.patterns import RuleFinder
from tests.helpers import found_of_types
from tests.unit.test_privacy_false_positives import _people


def _matches(text: str, finder: RuleFinder) -> list[tuple[str, str]]:
    return [(m.entity_type, text[m.start : m.end]) for m in finder(text)]


NAMES_WITH_PARTICLES = [
    ("Please forward this to Pieter de Vries.", ["Pieter de Vries"]),
    ("Dr. Rui dos Santos will call", ["Rui dos Santos"]),
    ("The keynote is by Ingrid van den Broek.", ["Ingrid van den Broek"]),
    ("The visa for Fatima bint Khalid was approved.", ["Fatima bint Khalid"]),
    ("Ask Karim bin Talal for the keys.", ["Karim bin Talal"]),
    ("Please cc Giulia della Rovere.", ["Giulia della Rovere"]),
    ("I'm meeting Francesca di Stefano at noon.", ["Francesca di Stefano"]),
    ("Our lawyer is Charlotte du Pont.", ["Charlotte du Pont"]),
    ("The invoice is addressed to Ana María de la Cruz.", ["Ana María de la Cruz"]),
    ("I talked to Marta de Souza Lima yesterday.", ["Marta de Souza Lima"]),
    ("Maria do Carmo Silva lives in Porto.", ["Maria do Carmo Silva"]),
    ("Jan ter Horst and Willem ten Cate founded the club.", ["Jan ter Horst", "Willem ten Cate"]),
    ("Yesterday Pieter de Vries called about the invoice.", ["Pieter de Vries"]),
    ("Dear Ms. van der Berg, thank you for your letter.", ["van der Berg"]),
    ("my name is maria da silva and i need help", ["maria da silva"]),
]
SHAPED_AND_HYPHENATED_NAMES = [
    ("I met Anne-Marie O'Neill yesterday", ["Anne-Marie O'Neill"]),
    (
        "We interviewed Sinéad O'Connor and Conor McGregor today.",
        ["Sinéad O'Connor", "Conor McGregor"],
    ),
    (
        "Forward the minutes to Hamish MacKenzie and Fiona McLeod.",
        ["Hamish MacKenzie", "Fiona McLeod"],
    ),
    ("Her lawyer, Priya D'Souza, sent the papers.", ["Priya D'Souza"]),
    (
        "We met Jean-Pierre Dubois and Marie-Claire Lefèvre today.",
        ["Jean-Pierre Dubois", "Marie-Claire Lefèvre"],
    ),
]
OBJECTS_OF_PERSON_VERBS = [
    ("Call Ana at 5pm.", ["Ana"]),
    ("In January we hired Ana.", ["Ana"]),
    ("Please ask Ana whether the draft is ready.", ["Ana"]),
    ("We invited Priyanka to the workshop.", ["Priyanka"]),
    ("Email Kwame the contract please.", ["Kwame"]),
    ("Please cc Lars on the contract.", ["Lars"]),
    ("Remind Kofi about the deadline.", ["Kofi"]),
    ("Ping Aisha when you are done.", ["Aisha"]),
    ("I need to invite Thabo and Lerato to the launch.", ["Thabo", "Lerato"]),
    ("Congratulate Aroha on the promotion!", ["Aroha"]),
    ("Can you email Dr. Chidi Okonkwo the report?", ["Chidi Okonkwo"]),
    ("Call Ana's mobile.", ["Ana"]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[pytest.param(t, e, id=f"particle-{i}") for i, (t, e) in enumerate(NAMES_WITH_PARTICLES)],
        *[
            pytest.param(t, e, id=f"shaped-{i}")
            for i, (t, e) in enumerate(SHAPED_AND_HYPHENATED_NAMES)
        ],
        *[pytest.param(t, e, id=f"object-{i}") for i, (t, e) in enumerate(OBJECTS_OF_PERSON_VERBS)],
    ],
)
def test_the_whole_name_is_found(detector: PiiDetector, text: str, expected: list[str]) -> None:
    assert _people(detector, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Call Center hours are 9-5.",
        "Install Python 3.12 first.",
        "ask Marketing about the banner",
        "email Support if it fails",
        "Please call Customer Service tomorrow.",
        "Call Stack overflow when recursing.",
        "Check the call Stack window.",
        "Message Queue latency spiked after the deploy.",
        "Text Box component renders twice.",
        "Interview Questions for backend roles",
        "Invite Link expired",
        "Email Us today.",
        "Remind Me Later button does nothing.",
        "call Foo.bar() twice",
        "cc Legal on the NDA thread.",
        "Email Sales the Q3 numbers.",
        "Text STOP to unsubscribe.",
        "We flew to Rio de Janeiro last spring.",
        "She studied at the Universidad de Chile.",
        "The Tour de France starts in July.",
        "Add a Van der Waals term to the model.",
    ],
)
def test_near_misses_name_no_one(detector: PiiDetector, text: str) -> None:
    assert _people(detector, text) == []


def test_a_place_written_like_a_name_stays_a_place(detector: PiiDetector) -> None:
    text = "We flew to Rio de Janeiro last spring."
    assert found_of_types(detector, text, "LOCATION") == ["Rio de Janeiro"]
    text = "The office near Jerez de la Frontera is closed."
    assert _matches(text, names.find_surname_forms) == [("LOCATION", "Jerez de la Frontera")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Send it to Omar al-Rashid.", ["Omar al-Rashid"]),
        ("Valéry Giscard d'Estaing spoke.", ["Valéry Giscard d'Estaing"]),
        ("Maria do Carmo da Silva signed.", ["Maria do Carmo da Silva"]),
        ("Tell Pieter de Vries's team.", ["Pieter de Vries"]),
        ("I'm Sofía de los Ángeles Ruiz.", ["Sofía de los Ángeles Ruiz"]),
        ("Meanwhile Conor McGregor won.", ["Conor McGregor"]),
        ("I visited Costa del Sol and Rio de Janeiro.", []),  # places
        ("Buy an Apple MacBook today.", []),
        ("Von der Leyen said so.", []),  # no given name before the particle
        ("Can Ann do Python?", []),  # a verb and a product, not a surname
    ],
)
def test_surname_forms(text: str, expected: list[str]) -> None:
    assert [value for _, value in _matches(text, names.find_surname_forms)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("we hired Ana.", ["Ana"]),
        ("Text Ana when you land", ["Ana"]),
        ("invite Thabo and Lerato", ["Thabo", "Lerato"]),
        ("the call Stack is deep", []),  # a noun after a determiner
        ("an email Template", []),
        ("Call Stack overflow", []),  # more of a noun phrase follows
        ("Email Status: sent", []),  # a field label
        ("call Foo.bar()", []),  # code
    ],
)
def test_verb_objects(text: str, expected: list[str]) -> None:
    assert [value for _, value in _matches(text, names.find_verb_objects)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi Efimiya, I'm writing about my wire transfer.", ["Efimiya"]),
        ("Hello Tomasz Nowak, thanks for the update.", ["Tomasz Nowak"]),
        ("Hey Ngozi! Are we still on for Friday?", ["Ngozi"]),
        ("Thanks for the slides. Good morning Aroha, one more thing:", ["Aroha"]),
        ("Ana, can you review my PR?", ["Ana"]),  # addressed without a greeting, as before
        ("Hello World! This is my first program.", []),
        ("Hi there, can you help me?", []),
        ("Hey Siri, set a timer", []),
        ("Hi team, the build is red.", []),
        ("Hello Kubernetes users, the cluster is down", []),  # no comma after the name
        ("She said hi Maria and left", []),  # not where a message or sentence starts
    ],
)
def test_greeted_names(text: str, expected: list[str]) -> None:
    assert [value for _, value in _matches(text, names.find_addressed_names)] == expected


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Remind Kofi", "Kofi"),
        ("cc Yuki", "Yuki"),
        ("ex-Band Lundqvist", "Lundqvist"),
        ("de Vries", "de Vries"),
        ("Call Ana", "Call Ana"),  # a word that opens sentences: the span's veto stands
        ("borna jerković", "borna jerković"),
    ],
)
def test_name_start_skips_verbs_and_lower_case_words(value: str, name: str) -> None:
    assert value[names.name_start(value) :] == name


@pytest.mark.parametrize(
    ("text", "first", "second", "expected"),
    [
        ("Marie-Claire Lefèvre", "Marie", "Claire Lefèvre", True),
        ("Rui dos Santos", "Rui", "Santos", True),
        ("Ann and Bob", "Ann", "Bob", False),
        ("Ann, Bob", "Ann", "Bob", False),
    ],
)
def test_pieces_of_one_name(text: str, first: str, second: str, expected: bool) -> None:
    end, start = text.index(first) + len(first), text.rindex(second)
    assert names.joins_name_pieces(text, end, start) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Customer: Efimiya Petrova", ["Efimiya Petrova"]),
        ("Patient name: Lerato Dlamini\nWard: 4B", ["Lerato Dlamini"]),
        ("Recipient: Sherlock Holmes", ["Sherlock Holmes"]),  # the label is no name
        ("Emergency contact: Kwame Boateng", ["Kwame Boateng"]),
        ("Customer: Guest", []),  # no one in particular
        ("Sender: Support Team", []),
    ],
)
def test_a_form_field_names_the_person_it_labels(
    detector: PiiDetector, text: str, expected: list[str]
) -> None:
    assert _people(detector, text) == expected
