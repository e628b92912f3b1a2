"""Rows in the routing schema (see shared/data/routing/README.md) and how to read them.

A row's labels (`weak_score`, `strong_score`) are optional: held-out data may lack them, and
nothing that decides a route ever reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smallfirst.errors import InvalidRequest
from smallfirst.paths import file_identity
from smallfirst.types import PART_SEPARATOR, ChatMessage

Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class RoutingRow:
    """One routing decision: the conversation as it arrives, and (if known) both outcomes."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    dataset: str = ""
    subject: str = ""
    weak_score: float | None = None
    strong_score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    given_id: Any = None  # the id as the file has it (a number stays a number in scores)
    source: str = ""  # "file:line" it was read from, to name it

    @property
    def has_labels(self) -> bool:
        return self.weak_score is not None and self.strong_score is not None

    @property
    def conversation(self) -> str:
        """Turns of one conversation share a key (`mt_bench-081-t1` -> `mt_bench-081`)."""
        stem, _, turn = self.id.rpartition("-t")
        return stem if stem and turn.isdigit() else self.id

    def group(self, group_by: str) -> str:
        """The cross-validation group. `subject` falls back to the conversation for rows
        without a subject, so the turns of one MT-Bench question never straddle folds."""
        if group_by == "subject":
            return self.subject or self.conversation
        if group_by == "dataset":
            return self.dataset
        return self.id


def _score(record: Mapping[str, Any], key: str) -> float | None:
    """`record[key].score`: a number in [0, 1] (the schema's), or None when not labelled."""
    side = record.get(key)
    if side is None:
        return None
    if not isinstance(side, Mapping):
        raise InvalidRequest(f"`{key}` must be an object with a `score`, got {side!r}")
    value = side.get("score")
    if value is None:
        return None
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise InvalidRequest(f"`{key}.score` must be a number in [0, 1], got {value!r}")
    return number


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float | str):  # true and false count as 1 and 0
        return None
    try:
        return float(value)
    except ValueError:
        return None


def row_from_record(
    record: Mapping[str, Any], line_number: int = 0, *, labels: bool = True
) -> RoutingRow:
    """One row from a JSON object; raises InvalidRequest saying what is wrong (not where).
    Without `labels` the scores are not read at all (`router score` never needs them)."""
    problem = messages_problem(record.get("messages"))
    if problem is not None:
        raise InvalidRequest(problem)
    cleaned = tuple(
        {"role": m["role"], "content": _text(m.get("content"))} for m in record["messages"]
    )
    given_id = record.get("id", f"row-{line_number}")
    return RoutingRow(
        id=str(given_id),
        given_id=given_id,
        messages=cleaned,
        dataset=str(record.get("dataset", "")),
        subject=str(record.get("subject", "")),
        weak_score=_score(record, "weak") if labels else None,
        strong_score=_score(record, "strong") if labels else None,
    )


def messages_problem(messages: Any) -> str | None:
    """Why `messages` is not a conversation the gateway would take, in the words of its
    400, or None. Content of another type was read as its Python spelling (`5` as "5"), one
    missing as "", and a missing role as "user"."""
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list of messages"
    for index, message in enumerate(messages):
        try:
            ChatMessage.model_validate(message)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in (index, *error["loc"]))
            return f"`messages.{where}`: {error['msg']}"
    return None


def _text(content: Any) -> str:
    """A message's text; content as OpenAI's list of parts is its text parts joined (it
    was read as the list's Python spelling)."""
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, Mapping)]
        return PART_SEPARATOR.join(part for part in parts if isinstance(part, str))
    return str(content or "")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; raises InvalidRequest naming the file
    and line that cannot be read, is not UTF-8, not JSON, or not a JSON object."""
    try:
        with Path(path).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield number, _json_object(raw, f"{path}:{number}")
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from exc


def _json_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8-sig"))  # a BOM, as Windows tools write
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{where}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def read_rows(path: str | Path, *, labels: bool = True) -> list[RoutingRow]:
    """Read one JSONL file; raises InvalidRequest naming the file and line at fault."""
    return read_many([path], labels=labels)


def read_many(paths: Iterable[str | Path], *, labels: bool = True) -> list[RoutingRow]:
    """The rows of each file in turn; raises InvalidRequest naming the file and line at
    fault. An id given twice, in one file or in two, and a file given twice, are faults: each
    such row counted twice in training and in the metrics."""
    rows: list[RoutingRow] = []
    files: dict[tuple[int, int], str | Path] = {}  # (device, inode) -> the path it was read by
    first_line: dict[str, tuple[str | Path, int]] = {}  # id -> where it was first
    for path in paths:
        identity = file_identity(Path(path))
        if identity in files:
            raise InvalidRequest(
                f"{path}: the same file as {files[identity]}, given before (each of its rows"
                " would count twice)"
            )
        if identity is not None:
            files[identity] = path
        for number, record in read_jsonl(path):
            try:
                row = row_from_record(record, number, labels=labels)
                if "id" in record:  # ids made from line numbers repeat from file to file
                    _check_first(row, (path, number), first_line)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{path}:{number}: {exc.message}") from exc
            rows.append(replace(row, source=f"{path}:{number}"))
    return rows


def _check_first(
    row: RoutingRow, where: tuple[str | Path, int], first_line: dict[str, tuple[str | Path, int]]
) -> None:
    """Raises when `row`'s id was seen before (`router label` refuses it in the same words:
    it resumes by id); otherwise records where it is."""
    earlier = first_line.setdefault(row.id, where)
    if earlier != where:
        path, number = earlier
        place = f"line {number}" if path == where[0] else f"{path}:{number}"
        raise InvalidRequest(f"id {row.given_id!r} is also on {place}")


def labelled(rows: Sequence[RoutingRow]) -> list[RoutingRow]:
    """Rows with both outcomes; raises when there are none (metrics need labels)."""
    kept = [row for row in rows if row.has_labels]
    if not kept:
        raise InvalidRequest("no row has both weak.score and strong.score")
    return kept
