"""Evaluate the detector on labelled data in presidio-research's schema
(`full_text` + `spans[{entity_type, start_position, end_position}]`).

Headline: token-level scores, as presidio-research computes its published F2 figures. Text is
split into word and punctuation tokens; a token takes the (mapped) type of the span it lies
in, else "O". Per type t: TP = gold t and predicted t; FP = predicted t, gold not t; FN = gold
t, predicted not t. Micro averages sum the counts over the evaluated types. Also reported:
span-level exact (same type, same offsets) and overlap (same type, any shared character)
matching, one-to-one.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.percentiles import percentile

# Gold labels -> evaluated types. Gold types not listed here are not targeted by the guard;
# their tokens count as "O" (so flagging them is a false positive).
GOLD_TO_EVAL: dict[str, str] = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "LOCATION": "LOCATION",
    "DATE_TIME": "DATE_TIME",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}
NOT_EVALUATED = (
    "ORGANIZATION", "TITLE", "AGE", "NRP", "DOMAIN_NAME", "US_DRIVER_LICENSE"
)  # fmt: skip
EVAL_TYPES: tuple[str, ...] = tuple(dict.fromkeys(GOLD_TO_EVAL.values()))

_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Span:
    entity_type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    spans: tuple[Span, ...]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def scores(self) -> dict[str, float | int]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f_beta(precision, recall, 1.0), 4),
            "f2": round(f_beta(precision, recall, 2.0), 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.tp + self.fn,
        }


@dataclass
class Report:
    samples: int
    token: dict[str, Counts] = field(default_factory=dict)
    span_exact: dict[str, Counts] = field(default_factory=dict)
    span_overlap: dict[str, Counts] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    mean_chars: float = 0.0
    unmapped_gold: set[str] = field(default_factory=set)  # gold types the guard does not target

    def as_dict(self) -> dict[str, Any]:
        def table(counts: dict[str, Counts]) -> dict[str, Any]:
            micro = Counts()
            for value in counts.values():
                micro.add(value)
            return {
                "per_type": {t: counts[t].scores() for t in EVAL_TYPES if t in counts},
                "micro": micro.scores(),
            }

        latencies = self.latencies_ms
        return {
            "samples": self.samples,
            "headline": "token",
            "matching": {
                "token": "presidio-research style token-level (IO tags, word/punct tokens)",
                "span_exact": "one-to-one, same type and identical character offsets",
                "span_overlap": "one-to-one, same type and at least one shared character",
            },
            "label_mapping": GOLD_TO_EVAL,
            # with the data's own (a newer generator writes RELIGION, HOSPITAL, ...)
            "not_evaluated": sorted(set(NOT_EVALUATED) | self.unmapped_gold),
            "token": table(self.token),
            "span_exact": table(self.span_exact),
            "span_overlap": table(self.span_overlap),
            "latency_ms": {
                "p50": round(percentile(latencies, 50), 3),
                "p95": round(percentile(latencies, 95), 3),
                "mean_chars": round(self.mean_chars, 1),
            },
        }


def f_beta(precision: float, recall: float, beta: float) -> float:
    if precision == 0.0 and recall == 0.0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def load_samples(path: Path) -> list[Sample]:
    """Read a presidio-research style JSON list; raises ValueError naming the file and the
    sample at fault."""
    try:
        raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from error
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ValueError(f"{path}: not JSON ({error.msg} at {where})") from error
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of samples")
    samples = []
    for index, item in enumerate(raw):
        try:
            samples.append(_sample(item))
        except ValueError as error:
            raise ValueError(f"{path}: sample {index}: {error}") from error
    return samples


def _sample(item: Any) -> Sample:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object with `full_text`, got {type(item).__name__}")
    text = item.get("full_text")
    if not isinstance(text, str):
        raise ValueError(f"`full_text` must be a string, got {text!r}")
    spans = item.get("spans") or []
    if not isinstance(spans, list):
        raise ValueError(f"`spans` must be a list, got {type(spans).__name__}")
    return Sample(text, tuple(_span(span, index) for index, span in enumerate(spans)))


def _span(raw: Any, index: int) -> Span:
    if not isinstance(raw, dict):
        raise ValueError(f"span {index} must be an object, got {type(raw).__name__}")
    kind = raw.get("entity_type")
    if not isinstance(kind, str):
        raise ValueError(f"span {index}: `entity_type` must be a string, got {kind!r}")
    start, end = _integer(raw.get("start_position")), _integer(raw.get("end_position"))
    if start is None or end is None:
        raise ValueError(
            f"span {index}: `start_position` and `end_position` must be integers, got "
            f"{raw.get('start_position')!r} and {raw.get('end_position')!r}"
        )
    return Span(kind, start, end)


def _integer(value: Any) -> int | None:
    """An offset as data sets write it: 12, 12.0 (a table export) or "12"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) else None


def map_gold(spans: Iterable[Span]) -> list[Span]:
    return [
        Span(GOLD_TO_EVAL[s.entity_type], s.start, s.end)
        for s in spans
        if s.entity_type in GOLD_TO_EVAL
    ]


def keep_evaluated(spans: Iterable[Span]) -> list[Span]:
    return [s for s in spans if s.entity_type in EVAL_TYPES]


def token_labels(text: str, spans: Sequence[Span]) -> list[str]:
    labels = []
    for token in _TOKEN.finditer(text):
        label = "O"
        for span in spans:
            if token.start() < span.end and span.start < token.end():
                label = span.entity_type
                break
        labels.append(label)
    return labels


def token_counts(text: str, gold: Sequence[Span], predicted: Sequence[Span]) -> dict[str, Counts]:
    counts: dict[str, Counts] = {t: Counts() for t in EVAL_TYPES}
    for gold_label, predicted_label in zip(
        token_labels(text, gold), token_labels(text, predicted), strict=True
    ):
        if gold_label == predicted_label:
            if gold_label != "O":
                counts[gold_label].tp += 1
            continue
        if predicted_label != "O":
            counts[predicted_label].fp += 1
        if gold_label != "O":
            counts[gold_label].fn += 1
    return counts


def span_counts(
    gold: Sequence[Span], predicted: Sequence[Span], *, exact: bool
) -> dict[str, Counts]:
    counts: dict[str, Counts] = {t: Counts() for t in EVAL_TYPES}
    unmatched = list(predicted)
    for g in gold:
        match = next(
            (
                p
                for p in unmatched
                if p.entity_type == g.entity_type
                and (
                    (p.start, p.end) == (g.start, g.end)
                    if exact
                    else p.start < g.end and g.start < p.end
                )
            ),
            None,
        )
        if match is None:
            counts[g.entity_type].fn += 1
        else:
            counts[g.entity_type].tp += 1
            unmatched.remove(match)
    for p in unmatched:
        counts[p.entity_type].fp += 1
    return counts


def evaluate(
    samples: Sequence[Sample],
    predict: Callable[[str], list[Span]],
    *,
    on_prediction: Callable[[int, list[Span]], None] | None = None,
) -> Report:
    """Score `predict` (text -> spans of guard types) against the mapped gold labels."""
    report = Report(samples=len(samples), mean_chars=mean_length(samples))
    for name in ("token", "span_exact", "span_overlap"):
        getattr(report, name).update({t: Counts() for t in EVAL_TYPES})
    for index, sample in enumerate(samples):
        started = time.perf_counter()
        predicted = keep_evaluated(predict(sample.text))
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        if on_prediction is not None:
            on_prediction(index, predicted)
        gold = map_gold(sample.spans)
        report.unmapped_gold.update(
            span.entity_type for span in sample.spans if span.entity_type not in GOLD_TO_EVAL
        )
        for name, counts in (
            ("token", token_counts(sample.text, gold, predicted)),
            ("span_exact", span_counts(gold, predicted, exact=True)),
            ("span_overlap", span_counts(gold, predicted, exact=False)),
        ):
            table = getattr(report, name)
            for entity_type, value in counts.items():
                table[entity_type].add(value)
    return report


def mean_length(samples: Sequence[Sample]) -> float:
    return statistics.fmean(len(s.text) for s in samples) if samples else 0.0
