"""Values as code and serialized text write them: a quoted secret with escaped quotes in it,
"é" and "@" written as escapes of a string literal, a key split into two literals joined with
"+". The detector reads each as the value it is, and redaction takes and restore gives back
the characters as written."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.privacy import PiiDetector
from smallfirst.privacy.normalize import normalized
from tests.helpers import found_in, redacted_round_trip

# (text, the secret in it as written): the value's escaped quote ended it, and the rest of the
# value went upstream in clear ("cd12345"), or a key too short up to it was no key at all
ESCAPED_QUOTE_SECRETS = [
    ('{"password": "ab\\"cd12345"}', 'ab\\"cd12345'),
    ('API_TOKEN="tok\\"en_12345678"', 'tok\\"en_12345678'),
    ('config = {"db": {"api_key": "Zq8\\"rT5wLm2Xp9Vb"}}', 'Zq8\\"rT5wLm2Xp9Vb'),
    ('client_secret = "k9\\\\d8\\"f7g6h5j4"  # rotate', 'k9\\\\d8\\"f7g6h5j4'),
    ('password = "zx81\\\\"  # an escaped backslash ends it', "zx81\\\\"),
    # JSON inside a string: the inner value's quote is escaped twice
    ('payload = "{\\"password\\": \\"Hunter2\\\\\\"x\\"}"', 'Hunter2\\\\\\"x'),
]


@pytest.mark.parametrize(("text", "secret"), ESCAPED_QUOTE_SECRETS)
def test_a_quoted_secret_runs_over_its_escaped_quotes(
    detector: PiiDetector, text: str, secret: str
) -> None:
    assert [value for kind, value in found_in(detector, text) if kind == "SECRET"] == [secret]


def test_escaped_quotes_still_read_as_quotes_around_a_name(detector: PiiDetector) -> None:
    text = 'James \\"Jimmy\\" McGill signed; password="a\\"b\\"c"'
    assert found_in(detector, text) == [
        ("PERSON", 'James \\"Jimmy\\" McGill'),
        ("SECRET", 'a\\"b\\"c'),
    ]


def test_invisible_characters_between_the_words_of_a_name_read_as_a_space() -> None:
    assert normalized("John\u200dSmith and Maria\u2060\u200bGonzalez").text == (
        "John Smith and Maria Gonzalez"
    )
    # inside a word, an address's user or code they read as nothing
    for text, view in [
        ("Jo\u200bhn", "John"),
        ("ana\u200bRuiz@flux.io", "anaRuiz@flux.io"),
        ("ACME\u200bCorp", "ACMECorp"),
    ]:
        assert normalized(text).text == view


def test_escapes_of_string_literals_read_as_their_characters() -> None:
    text = "Jos\\u00e9 \\x40 \\ud83d\\ude00 \\u{1F600} \\U0001F600 \\\\u00e9 \\ud800"
    view = normalized(text)
    # an escaped backslash and a lone surrogate stay as written
    assert view.text == "José @ 😀 😀 😀 \\\\u00e9 \\ud800"
    at = view.text.index("José")
    assert text[slice(*view.original_span(at, at + 4))] == "Jos\\u00e9"


# (text, (type, value as written)): values in code, written with escapes or split in two
IN_CODE = [
    ('print("Name:\\tJos\\u00e9 Garc\\u00eda")', ("PERSON", "Jos\\u00e9 Garc\\u00eda")),
    ("mail = 'fmueller\\x40example.de'", ("EMAIL_ADDRESS", "fmueller\\x40example.de")),
    (
        'card = "4111\\u00201111\\u00201111\\u00201111"',
        ("CREDIT_CARD", "4111\\u00201111\\u00201111\\u00201111"),
    ),
    (
        'const apiKey = "sk-proj-AbCdEfGh" + "IjKlMnOpQrStUvWx1234";',
        ("SECRET", 'sk-proj-AbCdEfGh" + "IjKlMnOpQrStUvWx1234'),
    ),
    ('password = "Tr0ub4dor" +\n    "&3Horse"', ("SECRET", 'Tr0ub4dor" +\n    "&3Horse')),
]


@pytest.mark.parametrize(("text", "finding"), IN_CODE)
def test_a_value_in_code_is_found_as_written(
    detector: PiiDetector, text: str, finding: tuple[str, str]
) -> None:
    assert finding in found_in(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        'Press "Ctrl" + "C" to copy',
        "Call getUser\u200bName() to read it",
        "In JSON write \\u00e9 for an accented e",
    ],
)
def test_code_that_holds_no_value_has_no_finding(detector: PiiDetector, text: str) -> None:
    assert found_in(detector, text) == []


@pytest.mark.parametrize(
    ("template", "value", "entity_type"),
    [
        ('API_TOKEN="{}"', 'tok\\"en_12345678', "SECRET"),
        ('const apiKey = "{}";', 'sk-proj-AbCdEfGh" + "IjKlMnOpQrStUvWx1234', "SECRET"),
        ("mail = 'Contact: {}'", "fmueller\\x40example.de", "EMAIL_ADDRESS"),
        ("Contact {} today about the invoice.", "John\u200dSmith", "PERSON"),
    ],
)
def test_redaction_takes_the_value_as_written_and_restore_gives_it_back(
    module_api: tuple[TestClient, Any], template: str, value: str, entity_type: str
) -> None:
    redacted_round_trip(*module_api, template, value, entity_type)
