"""Values written in an encoding that hides them from the patterns: URL encoding (percent-
escapes, "+" for a space in a query string or a form body), base64, an ideographic full stop
for a dot, look-alike letters of other scripts in an address's domain; and phone numbers
written the way Chinese text writes them. What is found, redacted and restored is the value
as it was written."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.privacy import PiiDetector
from smallfirst.privacy.normalize import normalized
from tests.helpers import (
    found_in,
    redacted_round_trip,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_view_reads_url_encoding_and_maps_back_to_the_escapes() -> None:
    text = "https://x.io/u?to=Jos%C3%A9+Ruiz&mail=ana%40flux.io&q=a%2Bb"
    view = normalized(text)
    assert view.text == "https://x.io/u?to=José Ruiz mail=ana@flux.io q=a+b"
    at = view.text.index("é")
    assert text[slice(*view.original_span(at, at + 1))] == "%C3%A9"  # both bytes
    at = view.text.index("ana@flux.io")
    assert text[slice(*view.original_span(at, at + 11))] == "ana%40flux.io"
    # twice encoded (a URL in a query), then read through
    assert normalized("next=%2Fu%3Fe%3Dann%2540x.io").text == "next=/u?e=ann@x.io"


def test_a_plus_is_a_space_only_inside_a_form_fields_value() -> None:
    assert normalized("https://x.io/a+b/c?q=x+y&n=1").text == "https://x.io/a+b/c?q=x y n=1"
    assert normalized("tel=+44+20+7946+0958&x=1").text == "tel=+44 20 7946 0958 x=1"
    assert normalized("C++ is a+b, 50% off %zz").text == "C++ is a+b, 50% off %zz"  # no form
    # a secret's value is read as written: a password is no words
    assert normalized("a=%40&password=hunter+2%20go").text == "a=@ password=hunter+2%20go"
    assert normalized("caf%E9=1%2B").text == "caf%E9=1+"  # Latin-1 escapes are not UTF-8


URL_ENCODED = "https://example.com/u?email=john.doe%40example.com&phone=%2B44%2020%207946%200958"
FORM_BODY = "name=Jane+Doe&email=jane.doe%40example.com&card=4539+1488+0343+6467"
IBAN = "GB82%20WEST%201234%205698%207654%2032"


@pytest.mark.parametrize(
    ("text", "entity_type", "value"),
    [
        (URL_ENCODED, "EMAIL_ADDRESS", "john.doe%40example.com"),
        (URL_ENCODED, "PHONE_NUMBER", "%2B44%2020%207946%200958"),
        (FORM_BODY, "EMAIL_ADDRESS", "jane.doe%40example.com"),
        (FORM_BODY, "CREDIT_CARD", "4539+1488+0343+6467"),
        ("https://cdn.example.net/u/li.wei%40qq.com/1.png", "EMAIL_ADDRESS", "li.wei%40qq.com"),
        (f"?iban={IBAN}&x=1", "IBAN_CODE", IBAN),
        ("cb?next=%2Fme%3Fmail%3Dt.ng%2540fastmail.com", "EMAIL_ADDRESS", "t.ng%2540fastmail.com"),
    ],
)  # fmt: skip
def test_url_encoded_values_are_found_as_written(
    detector: PiiDetector, text: str, entity_type: str, value: str
) -> None:
    assert (entity_type, value) in found_in(detector, text)


def test_a_secret_in_a_form_body_stays_whole_beside_the_values_read_through(
    detector: PiiDetector,
) -> None:
    text = "login?user=ann&mail=ann%40flux.io&password=hunter+2+go&remember=1"
    assert found_in(detector, text) == [
        ("EMAIL_ADDRESS", "ann%40flux.io"),
        ("SECRET", "hunter+2+go"),
    ]


def test_base64_of_text_holding_a_value_is_found_whole_and_lookalikes_are_not(
    detector: PiiDetector,
) -> None:
    email, card = b64("john.doe@example.com"), b64("card 4012 8888 8888 1881")
    phone, iban = b64("call me on +49 30 901820 11"), b64("IBAN DE89 3704 0044 0532 0130 00")
    url_safe = base64.urlsafe_b64encode("ünï-user+tag@proton.me?".encode()).decode().rstrip("=")
    text = (
        f'<img src="data:text/plain;base64,{email}"> {json.dumps({"c": card})}\n'
        f"owner: {phone}\n/v1/u/{url_safe}/settings iban={iban}"
    )
    assert found_in(detector, text) == [
        ("EMAIL_ADDRESS", email),
        ("CREDIT_CARD", card),
        ("PHONE_NUMBER", phone),
        ("EMAIL_ADDRESS", url_safe),
        ("IBAN_CODE", iban),
    ]
    benign = [
        hashlib.sha256(b"x").hexdigest(),
        str(uuid.UUID(int=7**40)),
        b64("Hello, world! Nothing personal in here, dated 2024-05-01."),
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
        "getUserByEmailAddress internationalization /usr/local/bin/python3",
    ]
    assert found_in(detector, "\n".join(benign)) == []


def test_a_value_two_tokens_make_only_together_is_found_in_neither(
    detector: PiiDetector,
) -> None:
    # the decoded texts are read in one pass, side by side: there a key's first line and its
    # rest read as one key, which neither token holds
    head = "-----BEGIN RSA PRIVATE KEY-----"
    rest = "MIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    assert found_in(detector, f"{b64(head)} {b64(rest)}") == []


def test_a_jwt_holding_an_address_stays_one_secret(detector: PiiDetector) -> None:
    payload = base64.urlsafe_b64encode(b'{"email":"ann@flux.io"}').decode().rstrip("=")
    token = f"eyJhbGciOiJIUzI1NiJ9.{payload}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    text = f"Authorization: Bearer {token}\nmy data: {payload}"
    assert found_in(detector, text) == [("SECRET", token), ("EMAIL_ADDRESS", payload)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Mail: wei。zhang@163。com", "wei。zhang@163。com"),  # ideographic full stop
        ("邮箱：li。na@sina。com。cn，谢谢", "li。na@sina。com。cn"),
        ("reach me: jo｡smith@example｡org", "jo｡smith@example｡org"),  # half-width
        ("admin contact: root@paypal.\u03bfrg", "root@paypal.\u03bfrg"),  # Greek omicron
        ("write to ann@flux.\u0456\u043e today", "ann@flux.\u0456\u043e"),  # Cyrillic i, o
    ],
)
def test_addresses_with_dot_or_letter_look_alikes_are_found(
    detector: PiiDetector, text: str, value: str
) -> None:
    assert ("EMAIL_ADDRESS", value) in found_in(detector, text)


def test_a_sentence_ending_ideographic_full_stop_stays_one() -> None:
    assert normalized("我很好。谢谢 a。b").text == "我很好。谢谢 a.b"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("我的手机号是13912345678", "13912345678"),
        ("客户手机：15987654321，请尽快联系", "15987654321"),
        ("请拨打电话18612345678预约", "18612345678"),
        ("携帯は09012345678です", "09012345678"),
        ("Contact him at 0086 18612345678 during office hours", "0086 18612345678"),
        ("Ring 0044 2079460958 tomorrow", "0044 2079460958"),
    ],
)
def test_phone_numbers_in_cjk_text_or_after_00_are_found(
    detector: PiiDetector, text: str, number: str
) -> None:
    assert ("PHONE_NUMBER", number) in found_in(detector, text)


def test_a_bare_eleven_digit_number_without_a_phone_word_is_none(detector: PiiDetector) -> None:
    assert found_in(detector, "订单号13812345678已发货") == []
    assert found_in(detector, "Order 13812345678 shipped") == []
    assert ("PHONE_NUMBER", "13812345678") in found_in(detector, "手机 13812345678")


@pytest.mark.parametrize(
    ("value", "entity_type"),
    [
        ("ana.ruiz%40flux.io", "EMAIL_ADDRESS"),
        (b64("ana.ruiz@flux.io"), "EMAIL_ADDRESS"),
        ("ana。ruiz@flux。io", "EMAIL_ADDRESS"),
    ],
)
def test_an_encoded_value_is_redacted_and_restored_as_written(
    module_api: tuple[TestClient, Any], value: str, entity_type: str
) -> None:
    redacted_round_trip(*module_api, "Look up https://crm.example/?q={}&v=2", value, entity_type)


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        # six digits after the prefix, as "+33 12 34", are too few; eight are enough
        ("experiment 0033 12 34 done", "call 0033 12 34 56 78"),
        ("Lot 0031 20 55 shipped", "Ring 0031 20 555 1234"),
        # zero-padded: "00" is not "+" before a number named as an identifier
        ("Invoice 0034 566 7788 paid", "Contact 0034 566 7788"),
        ("serial 0086 1234 5678", "0086 186 1234 5678"),
        # a number named as an order number, though a phone word is near
        ("请联系客服，订单号13812345678已发货", "请联系我，手机13812345678"),
        ("연락 주세요. 주문번호 01012345678 확인", "연락 주세요. 01012345678"),
    ],
)
def test_a_00_prefix_or_a_phone_word_does_not_make_any_number_a_phone(
    detector: PiiDetector, text: str, phone: str
) -> None:
    assert "PHONE_NUMBER" not in [kind for kind, _ in found_in(detector, text)]
    assert [kind for kind, _ in found_in(detector, phone)] == ["PHONE_NUMBER"]
