"""PII in JSON text: escapes read as characters for the detector, values as they read."""

from __future__ import annotations

import json

import pytest

from smallfirst.privacy import Redaction
from smallfirst.privacy.json_text import readable_json, unescaped_value


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
    assert redaction.restore(escaped, in_json_string=True) == '{"to": "Ana \\"Nita\\" Ruiz"}'
    assert redaction.restore(escaped) == escaped  # prose: only the bracket spelling
    restorer = redaction.stream_restorer(in_json_string=True)
    pieces = [restorer.feed(character) for character in escaped] + [restorer.flush()]
    assert "".join(pieces) == '{"to": "Ana \\"Nita\\" Ruiz"}'
