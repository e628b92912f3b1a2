"""Values written so that a reader still reads them while a pattern does not: HTML character
references (`ann&#64;flux.io`, `&commat;`, `&period;`) and e-mail addresses with "at" and
"dot" spelled out (`john (at) example (dot) com`, `john at example dot com`). What is found,
redacted and restored is the value as it was written."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.privacy import PiiDetector
from smallfirst.privacy.normalize import normalized
from tests.helpers import found_in, redacted_round_trip


def test_the_view_reads_character_references_and_maps_back_to_each_whole() -> None:
    text = "ann&#64;flux&period;io &amp; li&#x40;qq&#46com"
    view = normalized(text)
    assert view.text == "ann@flux.io & li@qq.com"
    at = view.text.index("@")
    assert text[slice(*view.original_span(at, at + 1))] == "&#64;"
    assert text[slice(*view.original_span(0, 11))] == "ann&#64;flux&period;io"
    # a named reference needs its ";" (a query's field `&copy=2` is no "©"); unknown names and
    # bare ampersands stay as written
    assert normalized("a=1&copy=2 AT&T R&D &bogus;").text == "a=1 copy=2 AT&T R&D &bogus;"
    too_long = "&#" + "6" * 5000 + ";"  # html.unescape raises on it
    assert normalized(f"{too_long} &#0000064;").text == f"{too_long} @"
    # read before URL encoding: a link's escaped "&" separates its fields
    assert normalized("/s?a=1&amp;mail=ann%40flux.io").text == "/s?a=1 mail=ann@flux.io"


@pytest.mark.parametrize(
    ("before", "entity_type", "value"),
    [
        ("Mail ", "EMAIL_ADDRESS", "ann&#64;flux.io"),
        ("<a>", "EMAIL_ADDRESS", "ann&commat;flux.io"),
        ("contact: ", "EMAIL_ADDRESS", "j&#x2E;doe&#x40;example&#x2E;org"),
        ("", "EMAIL_ADDRESS", "john&period;doe&#64example&period;com"),  # ";" optional
        ("Tel: ", "PHONE_NUMBER", "&#43;44&nbsp;20&nbsp;7946&nbsp;0958"),
        ("card&colon; ", "CREDIT_CARD", "4539&#32;1488&#32;0343&#32;6467"),
    ],
)
def test_values_behind_character_references_are_found_as_written(
    detector: PiiDetector, before: str, entity_type: str, value: str
) -> None:
    assert (entity_type, value) in found_in(detector, f"{before}{value} today")


@pytest.mark.parametrize(
    "value",
    [
        "john (at) example (dot) com",
        "john [at] example [dot] com",
        "john{at}example{dot}com",
        "john(AT)example(DOT)com",
        "j.doe [@] example [.] co [.] uk",  # defanged
        "ann (at) flux.io",
        "li（at）163（dot）com",  # full-width brackets
    ],
)
def test_an_address_with_a_bracketed_at_is_found_as_written(
    detector: PiiDetector, value: str
) -> None:
    assert found_in(detector, f"Write to {value} for details.") == [("EMAIL_ADDRESS", value)]


@pytest.mark.parametrize(
    ("text", "value", "benign"),
    [
        ("Ping john at example dot com", "john at example dot com", "meet me at home dot"),
        ("Mail: JANE AT EXAMPLE DOT ORG", "JANE AT EXAMPLE DOT ORG", "look at this dot plot"),
        ("jsmith42 AT example DOT io.", "jsmith42 AT example DOT io", "we worked at a dot com"),
        (
            "email me at john dot smith at gmail dot com thanks",
            "john dot smith at gmail dot com",
            "it is available at amazon dot com",
        ),
        (
            "sales at acme dot co dot uk dot and more",  # the domain ends where it is known
            "sales at acme dot co dot uk",
            "the team at example.com ships weekly",  # no dot spelled out: where one works
        ),
    ],
)
def test_bare_words_spell_an_address_only_where_it_reads_as_one(
    detector: PiiDetector, text: str, value: str, benign: str
) -> None:
    assert ("EMAIL_ADDRESS", value) in found_in(detector, text)
    assert "EMAIL_ADDRESS" not in [kind for kind, _ in found_in(detector, benign)]


def test_a_spelled_address_needs_a_known_public_suffix(detector: PiiDetector) -> None:
    kinds = [kind for kind, _ in found_in(detector, "ann (at) flux (dot) internal")]
    assert "EMAIL_ADDRESS" not in kinds
    assert found_in(detector, "ann (at) flux (dot) io") == [
        ("EMAIL_ADDRESS", "ann (at) flux (dot) io")
    ]


@pytest.mark.parametrize("value", ["ana&#46;ruiz&#64;flux&#46;io", "ana dot ruiz at flux dot io"])
def test_a_spelled_value_is_redacted_and_restored_as_written(
    module_api: tuple[TestClient, Any], value: str
) -> None:
    redacted_round_trip(*module_api, "Send the invoice to {} today", value, "EMAIL_ADDRESS")
