"""Text hidden in base64: a data URL (`data:text/plain;base64,...`), a JSON field, a cookie or
a query parameter may carry an e-mail address or a card number encoded, which no pattern sees.

A token is read when it is plausibly base64 of text: at least twelve characters of one
alphabet (standard or URL-safe, RFC 4648), decoding to valid UTF-8 that is nearly all
printable. Hashes, UUIDs, identifiers and words rarely decode to valid UTF-8 at all, and what
is found in the decoded text must still pass the patterns, so a token is a finding only when
it holds a value of a checked type (`recognizers.RuleSet`); the whole token is then the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

# Twelve characters encode nine bytes: an e-mail address can be as short as eight ("a@b.io"
# is six, padded to eight) and a phone number seven digits; shorter runs are mostly words.
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{12,}={0,2}(?![A-Za-z0-9+/_\-=])")
_SEGMENT = re.compile(r"[A-Za-z0-9+_\-]{12,}={0,2}")
# Share of the decoded characters that must be printable (or tab and line breaks).
_PRINTABLE_SHARE = 0.95


def base64_texts(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) of each token in `text` that is base64 of text. A token that
    does not decode whole may be a path: its segments between slashes are tried instead."""
    for match in _TOKEN.finditer(text):
        decoded = _decoded_text(match.group())
        if decoded is not None:
            yield match.start(), match.end(), decoded
        elif "/" in match.group():  # "/users/am9obi5kb2VAZXhhbXBsZS5jb20="
            for segment in _SEGMENT.finditer(text, match.start(), match.end()):
                decoded = _decoded_text(segment.group())
                if decoded is not None:
                    yield segment.start(), segment.end(), decoded


def _decoded_text(token: str) -> str | None:
    """The text `token` encodes in base64, or None if it is no base64 of text."""
    body = token.rstrip("=")
    url_safe = "-" in body or "_" in body
    if len(body) % 4 == 1 or (url_safe and ("+" in body or "/" in body)):
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if url_safe else None, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    printable = sum(ch.isprintable() or ch in "\t\n\r" for ch in decoded)
    return decoded if printable >= _PRINTABLE_SHARE * len(decoded) else None
