"""PII in JSON text: escapes read as characters for the detector, values as they read."""

from __future__ import annotations

import json

import pytest

from smallfirst.privacy import Finding, PiiDetector, Redaction
from smallfirst.privacy.json_text import readable_json, unescaped_value, whole_escapes_end
from smallfirst.privacy.normalize import normalized, with_escaped_quotes_read
from smallfirst.privacy.redact import redact_texts
from tests.helpers import found_in


def test_unicode_escapes_in_json_read_as_their_characters() -> None:
    text = json.dumps({"guest": "José Álvarez-Núñez", "city": "Málaga", "mood": "😀"})
    assert "Jos\\u00e9" in text  # json.dumps writes ASCII by default
    readable = readable_json(text)
    assert readable == '{"guest": "José Álvarez-Núñez", "city": "Málaga", "mood": "😀"}'
    assert json.loads(readable) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"q": "\\u0022quoted\\u0022 and \\u005c and \\u000a"}',  # must stay escaped in JSON
        '{"path": "C:\\\\u00e9"}',  # an escaped backslash, then the letters u00e9
        '{"lone": "\\ud800"}',  # half a surrogate pair is no character
        'print("caf\\u00e9")  # not JSON: meant as written',
    ],
)
def test_escapes_json_needs_and_text_that_is_not_json_stay_as_written(text: str) -> None:
    assert readable_json(text) == text


def test_a_value_reads_as_its_json_escapes_say() -> None:
    assert unescaped_value("17 Greenhill Road\\nOxford") == "17 Greenhill Road\nOxford"
    assert unescaped_value('Ana \\"Nita\\" Ruiz') == 'Ana "Nita" Ruiz'
    assert unescaped_value("C:\\temp") == "C:\temp"  # a tab: as JSON reads it
    assert unescaped_value("plain") == "plain"
    assert unescaped_value("a\\qb") == "a\\qb"  # no JSON escape: as written


def test_placeholders_with_escaped_brackets_are_restored_in_json() -> None:
    redaction = Redaction({"<PERSON_1>": 'Ana "Nita" Ruiz'})
    escaped = '{"to": "\\u003cPERSON_1\\u003e"}'  # Go's encoder writes < and > so
    for in_json_string in (True, False):  # in prose too: brackets so escaped are JSON's
        restored = redaction.restore(escaped, in_json_string=in_json_string)
        assert restored == '{"to": "Ana \\"Nita\\" Ruiz"}'
    for spelled in (escaped, '{"to": "<PERSON_1\\u003e"}', '{"to": "\\u003cPERSON_1>"}'):
        restorer = redaction.stream_restorer(in_json_string=True)
        pieces = [restorer.feed(character) for character in spelled] + [restorer.flush()]
        assert "".join(pieces) == '{"to": "Ana \\"Nita\\" Ruiz"}'


def test_json_cut_off_still_reads_as_json() -> None:
    cut = json.dumps({"guest": "José Álvarez", "notes": "x" * 50})[:40]  # a size limit
    assert readable_json(cut).startswith('{"guest": "José Álvarez"')


def test_an_escaped_quote_reads_as_a_quote_to_the_detector(detector: PiiDetector) -> None:
    """Padded to its length with a space (`James  "Jimmy " McGill`), the NER found "James"
    alone and the nickname and surname went upstream in clear."""
    text = json.dumps({"customer": 'James "Jimmy" McGill', "vip": True})
    view = with_escaped_quotes_read(normalized(text))
    assert view.text == '{"customer": "James "Jimmy" McGill", "vip": true}'
    assert found_in(detector, text) == [("PERSON", 'James \\"Jimmy\\" McGill')]
    redacted, _ = redact_texts([text], [detector.inspect(text)])
    assert json.loads(redacted[0]) == {"customer": "<PERSON_1>", "vip": True}


def test_a_span_never_ends_inside_an_escape() -> None:
    text = '"James \\"Jimmy\\" McGill"'
    assert whole_escapes_end(text, 1, text.index("Jimmy") + 6) == text.index("Jimmy") + 5
    assert whole_escapes_end(text, 1, len(text) - 1) == len(text) - 1


def test_a_value_in_json_and_in_prose_is_one_placeholder_and_prose_keeps_backslashes() -> None:
    """Only JSON text has escapes: a password typed with a backslash comes back as typed."""
    name = 'James "Jimmy" McGill'
    prose = f"My lawyer is {name}, password=ab\\ncd9"
    arguments = json.dumps({"customer": name})
    secret_start = prose.index("ab")
    findings = [
        [_at(prose, "PERSON", name), Finding("SECRET", secret_start, len(prose), 0.9)],
        [_at(arguments, "PERSON", "James")],  # the detector saw the first name only
    ]
    redacted, redaction = redact_texts([prose, arguments], findings)
    assert json.loads(redacted[1]) == {"customer": "<PERSON_1>"}
    assert redaction.restore(redacted[0]) == prose
    assert redaction.restore("<SECRET_1>") == "ab\\ncd9"  # a backslash and an n


def _at(text: str, kind: str, value: str) -> Finding:
    start = text.index(value)
    return Finding(kind, start, start + len(value), 0.9)


def test_a_value_found_in_json_is_found_again_in_prose_as_it_reads_there() -> None:
    """PHP's json_encode writes "/" as "\\/": a key found in a tool result was looked for in
    the next message as JSON spelled it, and went to the cloud in clear there."""
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    result = '{"aws_secret_access_key": "' + key.replace("/", "\\/") + '"}'
    prose = f"The key {key} stopped working, why?"
    findings = [[_at(result, "SECRET", key.replace("/", "\\/"))], []]
    redacted, _ = redact_texts([result, prose], findings)
    assert redacted == [
        '{"aws_secret_access_key": "<SECRET_1>"}',
        "The key <SECRET_1> stopped working, why?",
    ]


def test_a_value_found_in_json_is_found_again_as_json_spelled_it_in_other_json() -> None:
    """A key a tool result spelled with PHP's "\\/" recurs so spelled in the next result."""
    key = "wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY"
    first, second = '{"key": "' + key + '"}', '{"old_key": "' + key + '", "ok": false}'
    redacted, _ = redact_texts([first, second], [[_at(first, "SECRET", key)], []])
    assert redacted == ['{"key": "<SECRET_1>"}', '{"old_key": "<SECRET_1>", "ok": false}']


def test_a_span_ending_inside_an_escape_leaves_the_json_valid() -> None:
    arguments = json.dumps({"customer": 'James "Jimmy" McGill'})
    start = arguments.index("James")
    inside_escape = arguments.index("Jimmy") + len("Jimmy") + 1  # between \ and "
    redacted, redaction = redact_texts(
        [arguments], [[Finding("PERSON", start, inside_escape, 0.9)]]
    )
    assert json.loads(redacted[0]) == {"customer": '<PERSON_1>" McGill'}
    assert redaction.values == {"<PERSON_1>": 'James "Jimmy'}
