"""Lone UTF-16 surrogates: JSON's grammar lets a string hold an escape of half a pair
(`"\\ud800"`), and Python's `json` reads it as a character no UTF-8 can encode, so such text
could be neither tokenized, logged, sent upstream nor written into an answer (500s, and
streams cut mid-answer). pydantic's parser refuses them in requests; the JSON read with
`json` (upstream answers, a model's tool call) goes through here."""

from __future__ import annotations

import json
import re
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # `json` joins a pair into one character
REPLACEMENT = "\ufffd"
# An escape that may be half a pair: where none is, nothing needs walking.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(raw: str | bytes) -> bool:
    if isinstance(raw, bytes):
        return _SURROGATE_ESCAPE_BYTES.search(raw) is not None
    return _SURROGATE_ESCAPE.search(raw) is not None


def loads_replacing_surrogates(raw: str | bytes) -> Any:
    """`json.loads`, with each lone surrogate (keys too) made U+FFFD, as a local model's
    bytes that are not UTF-8 are."""
    data = json.loads(raw)
    return _replaced(data) if may_hold_surrogates(raw) else data


def surrogate_path(value: Any, path: tuple[str | int, ...] = ()) -> list[str | int] | None:
    """Where in a JSON value the first lone surrogate is: the string's path, or the path of
    the object whose key holds it."""
    if isinstance(value, str):
        return list(path) if LONE_SURROGATE.search(value) else None
    if isinstance(value, dict):
        if any(LONE_SURROGATE.search(key) for key in value):
            return list(path)
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for step, item in items:
        if (found := surrogate_path(item, (*path, step))) is not None:
            return found
    return None


def escaped_surrogates(text: str) -> str:
    """JSON text with its lone surrogates written back as the escapes they were read from:
    the same JSON value, now UTF-8 can hold it."""
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return LONE_SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    return value
