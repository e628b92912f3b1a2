"""Reversible redaction: PII values become stable placeholders such as `<PERSON_1>` before a
prompt leaves the machine, and the answer (whole or streamed) gets the values back."""

from __future__ import annotations

import bisect
import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from smallfirst.privacy.detect import Finding
from smallfirst.privacy.json_text import looks_like_json, value_at
from smallfirst.privacy.normalize import normalized
from smallfirst.types import PART_SEPARATOR, ChatMessage

# A placeholder as an answer may spell it: as it was sent, or with its brackets escaped for
# where the model wrote it: in JSON (Go's encoder writes \u003cPERSON_1\u003e), in HTML
# (&lt;PERSON_1&gt;, else a browser reads a tag) or in Markdown (\<PERSON_1\>; both escaped,
# as the backslash of a Windows path's \<PERSON_1>\ is the path's). No other text spells
# one: the input's own are reserved (`Redactor`). A label without its angle brackets
# (PERSON_1, [PERSON_1]) or in another case is not restored: a model also makes names and
# tags of the labels (`PERSON_1 = "<PERSON_1>"`, `<person_1>...</person_1>`).
_SPELLED_PLACEHOLDER = re.compile(
    r"(?:(?P<markdown>\\<)|<|\\u003[cC]|&lt;)(?P<label>[A-Z][A-Z_]*)_(?P<number>\d+)"
    r"(?(markdown)\\>|(?:>|\\u003[eE]|&gt;))"
)
_OPENINGS = ("<", "\\u003c", "\\u003C", "&lt;")
_CLOSINGS = (">", "\\u003e", "\\u003E", "&gt;")


def _spellings(placeholder: str) -> list[str]:
    inside = placeholder[1:-1]
    return [f"\\<{inside}\\>"] + [
        f"{opening}{inside}{closing}" for opening in _OPENINGS for closing in _CLOSINGS
    ]


@dataclass
class Redaction:
    """Placeholder -> original value for one request. Keep it in memory only: never log it."""

    values: dict[str, str] = field(default_factory=dict)

    def restore(self, text: str, *, in_json_string: bool = False) -> str:
        """Values back in place of placeholders, escaped as their brackets were: for HTML
        when written `&lt;...&gt;`, for a JSON string when `\\u003c...` or when `text` is the
        inside of one (`in_json_string`: a tool call's arguments), to keep it valid."""
        if not self.values:
            return text

        def value(match: re.Match[str]) -> str:
            original = self.values.get(f"<{match['label']}_{match['number']}>")
            if original is None:
                return match.group()
            opening = match.string[match.start() : match.start("label")]
            brackets = opening + match.string[match.end("number") : match.end()]
            if "&" in brackets:
                original = html.escape(original)
            if in_json_string or "u003" in brackets:
                original = json.dumps(original, ensure_ascii=False)[1:-1]
            return original

        return _SPELLED_PLACEHOLDER.sub(value, text)

    def stream_restorer(self, *, in_json_string: bool = False) -> StreamRestorer:
        return StreamRestorer(self, in_json_string=in_json_string)

    def __repr__(self) -> str:  # values must not reach logs through a stray repr
        return f"Redaction({len(self.values)} placeholders)"


class Redactor:
    """Hands out placeholders: the same value gets the same placeholder across every text of
    one request; numbering skips placeholders that already occur in the input."""

    def __init__(self, reserved_text: str = "") -> None:
        self._reserved = {
            (match["label"], match["number"])
            for match in _SPELLED_PLACEHOLDER.finditer(reserved_text)
        }
        self._by_value: dict[str, str] = {}
        self._next_number: dict[str, int] = {}
        self.redaction = Redaction()

    def placeholder_for(self, entity_type: str, value: str) -> str:
        existing = self._by_value.get(value)
        if existing is not None:
            return existing
        label = re.sub(r"[^A-Z_]", "_", entity_type.upper()) or "PII"
        number = self._next_number.get(label, 1)
        while (label, str(number)) in self._reserved:
            number += 1
        self._next_number[label] = number + 1
        placeholder = f"<{label}_{number}>"
        self._by_value[value] = placeholder
        self.redaction.values[placeholder] = value
        return placeholder

    def redact(self, text: str, findings: Iterable[Finding]) -> str:
        """`text` with each finding's value replaced. In JSON text a value is what its
        escapes say ("Road\\nOxford" is a line break, as in prose) and a span may not end
        inside an escape; elsewhere a backslash is a backslash."""
        in_json = looks_like_json(text)
        pieces: list[str] = []
        cursor = 0
        for finding in sorted(findings, key=lambda f: f.start):
            if finding.start < cursor:
                continue  # overlaps are resolved by the detector; skip any leftover
            end, value = value_at(text, finding.start, finding.end, in_json=in_json)
            pieces.append(text[cursor : finding.start])
            pieces.append(self.placeholder_for(finding.entity_type, value))
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces)


def redact_texts(
    texts: Sequence[str],
    findings_per_text: Sequence[Sequence[Finding]],
    *,
    numbered_first: Sequence[int] = (),
) -> tuple[list[str], Redaction]:
    """Each text redacted, and the placeholders' values. Placeholders are numbered in the
    order of the texts, those at the indices `numbered_first` first."""
    if len(texts) != len(findings_per_text):
        raise ValueError("need one findings list per text")
    redactor = Redactor(reserved_text="\n".join(texts))
    everywhere = with_repeats(texts, findings_per_text)
    first = dict.fromkeys(numbered_first)
    redacted: dict[int, str] = {}
    for index in [*first, *(i for i in range(len(texts)) if i not in first)]:
        redacted[index] = redactor.redact(texts[index], everywhere[index])
    return [redacted[index] for index in range(len(texts))], redactor.redaction


# A part of a person's name that names them alone: a capitalised word of three letters or
# more ("Tomasz", "Kowalski"; not "Li" or "de").
_NAME_PART = re.compile(r"\b[^\W\d_a-z][^\W\d_]{2,}\b")


def with_repeats(
    texts: Sequence[str], findings_per_text: Sequence[Sequence[Finding]]
) -> list[list[Finding]]:
    """Each text's findings, and every other place where a value found anywhere in the
    request occurs as a whole word: the detector may see a name in one sentence and miss it
    in the next ("My name is Ana. Add Ana to the list"), and the value is PII either way;
    so are the parts of a person's full name ("Tomasz" of "Tomasz Kowalski"). In
    JSON text the value is also looked for as JSON spells it (`James \\"Jimmy\\" McGill`), and a
    value found in JSON text as it reads in prose; a repeat that holds findings of its own
    replaces them ("James" of that name)."""
    kinds: dict[str, str] = {}
    for text, findings in zip(texts, findings_per_text, strict=True):
        in_json_text = looks_like_json(text)
        for finding in findings:
            kinds.setdefault(finding.value_in(text), finding.entity_type)
            if in_json_text:  # and as it reads in prose: `K7\/MDENG` is the key `K7/MDENG`
                _, value = value_at(text, finding.start, finding.end, in_json=True)
                kinds.setdefault(value, finding.entity_type)
    for value, kind in list(kinds.items()):
        visible = normalized(value).text  # "Ｍａｒｉａ" or "Mar\u200bia" found: "Maria" too
        kinds.setdefault(visible, kind)
        if kind == "PERSON":  # "Tomasz Kowalski", then "Tomasz will call": the given name
            for part in (*_NAME_PART.findall(value), *_NAME_PART.findall(visible)):
                kinds.setdefault(part, kind)
    kinds.pop("", None)
    if not kinds:
        return [list(findings) for findings in findings_per_text]
    in_json = {json.dumps(value, ensure_ascii=False)[1:-1]: kind for value, kind in kinds.items()}
    in_json |= kinds
    in_prose_pattern, in_json_pattern = _whole_words(kinds), _whole_words(in_json)
    return [
        _with_repeats_in(text, findings, in_json_pattern, in_json)
        if looks_like_json(text)
        else _with_repeats_in(text, findings, in_prose_pattern, kinds)
        for text, findings in zip(texts, findings_per_text, strict=True)
    ]


def _whole_words(values: Iterable[str]) -> re.Pattern[str]:
    longest_first = sorted(values, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, longest_first)) + r")(?!\w)")


def _with_repeats_in(
    text: str, findings: Sequence[Finding], values: re.Pattern[str], kinds: dict[str, str]
) -> list[Finding]:
    kept = list(findings)
    for match in values.finditer(text):
        start, end = match.span()
        overlapping = [f for f in kept if f.start < end and start < f.end]
        if all(start <= f.start and f.end <= end for f in overlapping):
            kept = [f for f in kept if f not in overlapping]
            kept.append(Finding(kinds[match.group()], start, end, 1.0))
    return kept


def redact_messages(
    messages: Sequence[ChatMessage],
    findings_per_message: Sequence[Sequence[Finding]],
    *,
    numbered_first: Sequence[int] = (),
) -> tuple[list[ChatMessage], Redaction]:
    """Redact chat messages; findings are offsets into each message's `.text`. Messages with
    nothing to redact are returned unchanged. A message of text parts stays one: each finding
    is redacted in the part it is in, and one that runs across parts ("Jo" + "hn Smith" read
    as "Jo\\nhn Smith") in each of them, its piece there a value with a placeholder of its
    own, so that every part goes up as a part and the answer gets each piece back."""
    if len(messages) != len(findings_per_message):
        raise ValueError("need one findings list per message")
    texts: list[str] = []
    findings: list[list[Finding]] = []
    owner: list[int] = []  # the message each text is (a part) of
    for index, (message, found) in enumerate(zip(messages, findings_per_message, strict=True)):
        for text, in_text in _texts_with_findings(message, found):
            texts.append(text)
            findings.append(in_text)
            owner.append(index)
    first = [i for message in numbered_first for i, of in enumerate(owner) if of == message]
    redacted_texts, redaction = redact_texts(texts, findings, numbered_first=first)
    redacted_of = iter(redacted_texts)
    return [_with_texts(message, redacted_of) for message in messages], redaction


def _texts_with_findings(
    message: ChatMessage, findings: Sequence[Finding]
) -> list[tuple[str, list[Finding]]]:
    """The message's texts (its content, or each of its text parts), each with the findings
    in it: offsets into `message.text` moved into the part, a finding across parts cut at
    their ends."""
    if not isinstance(message.content, list):
        return [(message.text, list(findings))]
    texts = []
    start = 0
    for part in message.content:
        end = start + len(part.text)
        inside = [
            Finding(f.entity_type, max(f.start, start) - start, min(f.end, end) - start, f.score)
            for f in findings
            if max(f.start, start) < min(f.end, end)
        ]
        texts.append((part.text, inside))
        start = end + len(PART_SEPARATOR)
    return texts


def _with_texts(message: ChatMessage, redacted: Iterator[str]) -> ChatMessage:
    """`message` with its texts (as `_texts_with_findings` gave them) taken from `redacted`."""
    if not isinstance(message.content, list):
        text = next(redacted)
        return message.model_copy(update={"content": text}) if text != message.text else message
    parts = [part.model_copy(update={"text": next(redacted)}) for part in message.content]
    if all(new.text == old.text for new, old in zip(parts, message.content, strict=True)):
        return message
    return message.model_copy(update={"content": parts})


class StreamRestorer:
    """Restores placeholders in a streamed answer. `feed` returns what can be shown now; it
    holds back only a tail that could still become a placeholder; `flush` returns the rest."""

    def __init__(self, redaction: Redaction, *, in_json_string: bool = False) -> None:
        self._redaction = redaction
        self._in_json_string = in_json_string
        self._spellings = sorted(spelled for p in redaction.values for spelled in _spellings(p))
        self._longest = max(map(len, self._spellings), default=0)
        self._first_characters = {spelled[0] for spelled in self._spellings}
        self._pending = ""

    def feed(self, delta: str) -> str:
        if not self._redaction.values:
            return delta
        text = self._pending + delta
        hold_from = self._hold_point(text)
        self._pending = text[hold_from:]
        return self._redaction.restore(text[:hold_from], in_json_string=self._in_json_string)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self._redaction.restore(rest, in_json_string=self._in_json_string)

    def _hold_point(self, text: str) -> int:
        # The earliest position in the last (longest - 1) characters whose tail is a proper
        # prefix of a placeholder's spelling (if any spelling starts with the tail, the first
        # one sorted after it does); a complete placeholder is never held.
        for position in range(max(0, len(text) - self._longest + 1), len(text)):
            if text[position] not in self._first_characters:
                continue
            tail = text[position:]
            index = bisect.bisect_left(self._spellings, tail)
            following = self._spellings[index] if index < len(self._spellings) else ""
            if following != tail and following.startswith(tail):
                return position
        return len(text)


def audit_summary(findings: Iterable[Finding], action: str) -> dict[str, dict[str, int | str]]:
    """Entity type -> count and the action taken; safe to log (no values, no offsets)."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.entity_type] = counts.get(finding.entity_type, 0) + 1
    return {kind: {"count": n, "action": action} for kind, n in sorted(counts.items())}
