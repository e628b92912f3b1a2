"""Values a user pastes with characters that hide them from the patterns: zero-width and other
invisible characters (web pages, Word), full-width forms and odd spaces (CJK keyboards). The
detector reads a normalized view; what it reports, and what is redacted and restored, are
the characters of the original text."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.privacy import PiiDetector
from smallfirst.privacy.normalize import normalized
from tests.helpers import chat_body, fake_backend, redacted_round_trip

# (value as pasted, its entity type): each hides from the patterns when read as written
HIDDEN_VALUES = [
    ("ana\u200b.ruiz@flux.io", "EMAIL_ADDRESS"),  # zero-width space
    ("ana.ruiz\ufeff@flux.io", "EMAIL_ADDRESS"),  # byte-order mark
    ("ａｎａ＠ｆｌｕｘ．ｉｏ", "EMAIL_ADDRESS"),  # full-width forms
    ("+1\u00a0415\u00a0555\u00a00134", "PHONE_NUMBER"),  # no-break spaces
    ("+1 415\u200b555 0134", "PHONE_NUMBER"),
    ("＋１ ４１５ ５５５ ０１３４", "PHONE_NUMBER"),  # full-width digits and plus
    ("4111\u20601111\u20601111\u20601111", "CREDIT_CARD"),  # word joiners
    ("DE89\u00ad3704\u00ad0044\u00ad0532\u00ad0130\u00ad00", "IBAN_CODE"),  # soft hyphens
    ("ＤＥ８９３７０４００４４０５３２０１３０００", "IBAN_CODE"),
    ("Mar\u200bia Gonz\u00adalez", "PERSON"),
]


def test_the_view_maps_back_to_the_characters_it_comes_from() -> None:
    text = "mail ａｎａ\u200b＠x.io, ½ cup, Jose\u0301"
    view = normalized(text)
    assert view.text == "mail ana@x.io, 1⁄2 cup, José"
    at = view.text.index("ana@x.io")
    assert view.original_span(at, at + len("ana@x.io")) == (5, 14)  # the hidden one inside
    half = view.text.index("1⁄2")
    assert view.original_span(half, half + 1) == (16, 17)  # "1" of "½" is all of "½"
    accented = view.text.index("José")
    assert text[slice(*view.original_span(accented, accented + 4))] == "Jose\u0301"


def test_text_that_reads_as_written_is_its_own_view() -> None:
    for text in ("plain ASCII", "José Álvarez-Núñez in 東京"):
        view = normalized(text)
        assert view.text == text
        assert view.text_is_original


def test_a_space_goes_between_cjk_script_and_ascii_standing_for_nothing() -> None:
    text = "メールはana@flux.ioです"
    view = normalized(text)
    assert view.text == "メールは ana@flux.io です"
    at = view.text.index("ana")
    assert text[slice(*view.original_span(at, at + len("ana@flux.io")))] == "ana@flux.io"


@pytest.mark.parametrize(("value", "entity_type"), HIDDEN_VALUES)
def test_a_hidden_value_is_found_as_the_characters_it_was_written_with(
    detector: PiiDetector, value: str, entity_type: str
) -> None:
    text = f"Please use {value} for this."
    found = [(f.entity_type, f.value_in(text)) for f in detector.inspect(text)]
    assert (entity_type, value) in found


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("私のメールはａｎａ＠ｆｌｕｘ．ｉｏです。", "ａｎａ＠ｆｌｕｘ．ｉｏ"),
        ("電話は090-1234-5678です。", "090-1234-5678"),
        ("이메일은 ana@flux.io입니다.", "ana@flux.io"),
    ],
)
def test_a_value_written_on_to_cjk_text_is_found_alone(
    detector: PiiDetector, text: str, value: str
) -> None:
    assert value in [f.value_in(text) for f in detector.inspect(text)]


@pytest.mark.parametrize(("value", "entity_type"), HIDDEN_VALUES)
def test_redaction_takes_every_character_of_a_hidden_value_and_restore_gives_it_back(
    module_api: tuple[TestClient, Any], value: str, entity_type: str
) -> None:
    redacted_round_trip(*module_api, "Please use {} for this.", value, entity_type)


def test_a_name_found_with_hidden_characters_is_redacted_where_it_recurs_plainly(
    module_api: tuple[TestClient, Any],
) -> None:
    client, gateway = module_api
    messages = [
        {"role": "user", "content": "My name is Ｔｏｍａｓｚ Ｋｏｗａｌｓｋｉ."},
        {"role": "user", "content": "tomorrow Tomasz will call"},
    ]
    assert (
        client.post("/v1/chat/completions", json=chat_body("big", messages=messages)).status_code
        == 200
    )
    sent = fake_backend(gateway, "big").requests[-1]
    assert "Tomasz" not in sent.messages[1].text
