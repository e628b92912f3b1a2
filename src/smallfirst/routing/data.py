"""Rows in the routing schema (see shared/data/routing/README.md) and how to read them.

A row's labels (`weak_score`, `strong_score`) are optional: held-out data may lack them, and
nothing that decides a route ever reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequest

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
    side = record.get(key)
    if isinstance(side, Mapping) and side.get("score") is not None:
        return float(side["score"])
    return None


def row_from_record(record: Mapping[str, Any], line_number: int = 0) -> RoutingRow:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"line {line_number}: `messages` must be a non-empty list")
    cleaned = tuple(
        {"role": str(m.get("role", "user")), "content": str(m.get("content") or "")}
        for m in messages
    )
    return RoutingRow(
        id=str(record.get("id", f"row-{line_number}")),
        messages=cleaned,
        dataset=str(record.get("dataset", "")),
        subject=str(record.get("subject", "")),
        weak_score=_score(record, "weak"),
        strong_score=_score(record, "strong"),
    )


def read_rows(path: str | Path) -> list[RoutingRow]:
    """Read one JSONL file; raises FileNotFoundError or InvalidRequest naming the line."""
    rows: list[RoutingRow] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"{path}:{number}: not JSON ({exc.msg})") from exc
            rows.append(row_from_record(record, number))
    return rows


def read_many(paths: Iterable[str | Path]) -> list[RoutingRow]:
    return [row for path in paths for row in read_rows(path)]


def labelled(rows: Sequence[RoutingRow]) -> list[RoutingRow]:
    """Rows with both outcomes; raises when there are none (metrics need labels)."""
    kept = [row for row in rows if row.has_labels]
    if not kept:
        raise InvalidRequest("no row has both weak.score and strong.score")
    return kept
