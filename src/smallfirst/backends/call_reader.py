"""A local model's tool calls read as they are written, character by character, in the shape
the tool grammar writes them (`local_tools.py`, `json_grammar.py`): `{"name": NAME,
"arguments": VALUE}`, or a JSON array of such calls, bare or fenced as a JSON code block, with
any JSON whitespace between tokens. A call cut off (by `max_tokens`) is read as far as it
goes, so that it can be sent as OpenAI sends one: its name and the arguments written so far.

Each character is read once (a stream may be long: code written into an argument), by a
generator that is sent one character at a time and keeps its place between pieces.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

_SPACE = " \t\n\r"

_Read = Generator[None, str, None]
_ReadChar = Generator[None, str, str]


@dataclass
class WrittenCall:
    """One call as far as it is written."""

    name: str = ""
    name_done: bool = False  # its closing quote is written
    # The arguments' JSON so far, compacted as json.dumps writes it (no whitespace but one
    # space after "," and ":" outside strings): a prefix of the whole call's arguments.
    arguments: str = ""
    done: bool = False  # the call's object is closed


class _NotACall(Exception):
    """The text cannot be (the beginning of) calls as the grammar writes them."""


class CallReader:
    """Feed it an answer's text piece by piece; `calls` is what it has called so far."""

    def __init__(self, *, several: bool) -> None:
        self.calls: list[WrittenCall] = []
        self.is_call = True  # False once the text cannot be calls
        self.whole = False  # every call, and the array or fence around them, is closed
        self._peeked: str | None = None
        self._reading = self._answer(several)
        next(self._reading)  # to the first character it waits for

    def feed(self, text: str) -> None:
        for char in text:
            if not self.is_call:
                return
            try:
                self._reading.send(char)
            except _NotACall:
                self.is_call = False

    def _answer(self, several: bool) -> _Read:
        yield from self._space()
        fenced = (yield from self._peek()) == "`"
        if fenced:  # "```json\n" or "```\n", as the grammar allows them
            yield from self._expect("```")
            if (yield from self._peek()) == "j":
                yield from self._expect("json")
            yield from self._expect("\n")
        if several and (yield from self._peek()) == "[":
            yield from self._expect("[")
            while True:
                yield from self._space()
                yield from self._call()
                yield from self._space()
                after = yield from self._next()
                if after == "]":
                    break
                if after != ",":
                    raise _NotACall
        else:
            yield from self._call()
        if fenced:
            yield from self._space()
            yield from self._expect("```")
        self.whole = True
        while True:  # only whitespace may follow
            if (yield from self._next()) not in _SPACE:
                raise _NotACall

    def _call(self) -> _Read:
        yield from self._expect("{")
        call = WrittenCall()
        self.calls.append(call)
        yield from self._key('"name"')
        yield from self._expect('"')
        while (char := (yield from self._next())) != '"':
            if char == "\\":  # tool names are plain: [a-zA-Z0-9_-]
                raise _NotACall
            call.name += char
        call.name_done = True
        yield from self._space()
        yield from self._expect(",")
        yield from self._key('"arguments"')
        yield from self._value(call)
        yield from self._space()
        yield from self._expect("}")
        call.done = True

    def _key(self, key: str) -> _Read:
        """`key` and its colon, with the whitespace around them."""
        yield from self._space()
        yield from self._expect(key)
        yield from self._space()
        yield from self._expect(":")
        yield from self._space()

    def _value(self, call: WrittenCall) -> _Read:
        """A JSON value into `call.arguments`, compacted, up to its last character."""
        depth, in_string, escaped = 0, False, False
        while True:
            char = yield from self._next()
            if in_string:
                call.arguments += char
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
                    if depth == 0:
                        return
                continue
            if depth == 0 and call.arguments and (char in _SPACE or char in ",}]"):
                self._peeked = char  # the end of a number or a literal
                return
            if char in _SPACE:
                continue
            if depth == 0 and char in ",:":
                raise _NotACall
            call.arguments += char + (" " if char in ",:" else "")
            if char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth <= 0:
                    if depth < 0:
                        raise _NotACall
                    return

    def _next(self) -> _ReadChar:
        if self._peeked is not None:
            char, self._peeked = self._peeked, None
            return char
        char = yield
        return char

    def _peek(self) -> _ReadChar:
        char = yield from self._next()
        self._peeked = char
        return char

    def _space(self) -> _Read:
        while (char := (yield from self._next())) in _SPACE:
            pass
        self._peeked = char

    def _expect(self, word: str) -> _Read:
        for expected in word:
            if (yield from self._next()) != expected:
                raise _NotACall
