"""Lone UTF-16 surrogates: JSON's grammar lets a string hold an escape of half a pair
(`"\\ud800"`), and Python's `json` reads it as a character no UTF-8 can encode, so such text
could be neither tokenized, logged, sent upstream nor written into an answer (500s, and
streams cut mid-answer). pydantic's parser refuses them in requests; the JSON read with
`json` (upstream answers, a model's tool call) goes through here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)

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
    return replaced_surrogates(data) if may_hold_surrogates(raw) else data


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


def replaced_surrogates(value: Any) -> Any:
    """A JSON value with each lone surrogate in it (keys too) made U+FFFD."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {replaced_surrogates(key): replaced_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replaced_surrogates(item) for item in value]
    return value


class SplitPairs(Generic[Key]):
    """Streamed texts, piece by piece, each under a key, with a UTF-16 pair cut between two
    pieces joined again: a server that slices JavaScript strings sends an emoji's halves as
    two lone escapes in two events, which read alone as two U+FFFD. A piece's last high half
    waits for the next piece of its text."""

    def __init__(self) -> None:
        self._held: dict[Key, str] = {}

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def join(self, key: Key, piece: str) -> str:
        """`piece` after the half held for `key`, without a high half it ends with."""
        held = self._held.pop(key, "")
        if piece and "\ud800" <= piece[-1] <= "\udbff":
            self._held[key] = piece[-1]
            piece = piece[:-1]
        if not held:
            return piece
        pair = (held + piece).encode("utf-16-le", "surrogatepass")
        return pair.decode("utf-16-le", "surrogatepass")

    def unpaired(self, ended: Callable[[Key], bool] = lambda key: True) -> list[Key]:
        """The keys of halves still held when the texts of the keys `ended` picks end: no
        other half comes."""
        held = [key for key in self._held if ended(key)]
        for key in held:
            del self._held[key]
        return held
