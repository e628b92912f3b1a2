"""spaCy's NER with a cheaper decoding loop.

Where the time goes with spaCy's own loop (en_core_web_sm, ~220 tokens per 1,000 characters):
the network (tok2vec CNN + the parser's precomputed lower layer) is about a third; the greedy
transition loop is the rest. That loop releases the GIL, but spaCy 3.8's compiled
move-validity checks take it back and release it several times for each of the 74
candidate moves at every token (perf: a third of all NER time in pthread mutex calls under
`TransitionSystem.set_valid`).

`NerRunner` runs the same network and makes the same greedy choices with a different loop,
for documents without preset entities (a fresh `make_doc`):

- a state's features are the next token, the first token of the open entity and the token
  before the next one, so with no entity open they depend on the next token only: the
  scores of those states, and the best valid move from each, are computed for the whole
  document in a few array operations;
- inside an entity only two moves are valid, "in" and "last" with the entity's label, so
  a step scores those two.

The network's matrix products go to numpy's BLAS on one thread (thinc's `NumpyOps(use_blis=
False)` under a threadpoolctl limit held for the call) instead of thinc's BLIS: the guard took
0.88-0.91 of the time per 1,000-character prompt, with the other core idle or busy, and gave
the same entities (docs/privacy.md). numpy's BLAS on its default two threads was 1.5x slower
than BLIS with the other core busy, hence the limit; without threadpoolctl BLIS stays.

The validity rules are spaCy's BILUO rules (`ner.pyx`) for a document without preset
entities. A pipeline this does not recognise (other components, another model
architecture, beam search), or one whose entities differ from spaCy's on a probe text,
runs through spaCy unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Exercises persons, places, dates, organisations, multi-token entities and line breaks.
_PROBE_TEXT = (
    "Dear Mr. John Smith, Maria Lindqvist flew from Paris to New York City on 12 May 2023 "
    "and met Acme Corporation staff at 221 Baker Street.\n\nKind regards, Anna Berg\n"
    "Call 555 0100 before Friday, 3 pm; Lake Geneva and the Rocky Mountains are far."
)


# spaCy's tokenizer searches a word's whole rest for each suffix it splits off: a run of
# emoji or closing brackets without a space took time quadratic in its length (16,000 emoji,
# 27 s, with every other request's scan waiting for the lock). No name is that long.
_LONG_WORD = re.compile(r"(\S{99})\S(?=\S)")
# Words spaCy's vocabulary keeps for the process's life (~600 bytes each, ~30 MB in all):
# without a bound every new id, number or name a prompt held stayed, and memory grew with
# the traffic.
KEPT_LEXEMES = 50_000
# Tokens kept at each end of a run without a letter or a digit, in multiples of how many
# tokens each side the network reads (`_LetterlessRuns`).
_READ_AT_RUN_ENDS = 4


def words_cut(text: str) -> str:
    """`text` with a space for every 100th character of a run without one: the same length,
    so the entities' offsets are the text's own."""
    return _LONG_WORD.sub(r"\1 ", text)


class NerRunner:
    """Callable text -> spaCy `Doc` with `doc.ents` set, as `nlp(text)` would."""

    def __init__(self, nlp: Any) -> None:
        self.nlp = nlp
        self._decoder = _GreedyNerDecoder.for_pipeline(nlp)
        self._letterless_runs = _LetterlessRuns.for_pipeline(nlp)
        if self._decoder is not None and not self.agrees_with_spacy(_PROBE_TEXT):
            logger.warning("fast NER decoding disagrees with spaCy; using spaCy's own loop")
            self._decoder = None

    @property
    def fast(self) -> bool:
        return self._decoder is not None

    def __call__(self, text: str) -> Any:
        return self.many([text])[0]

    def many(self, texts: Sequence[str]) -> list[Any]:
        """`[self(text) for text in texts]`, the network run once over all of them (its
        window does not reach across documents: each is padded apart)."""
        docs = [self.nlp.make_doc(words_cut(text)) for text in texts]
        runs = self._letterless_runs
        reads = [(doc, None) if runs is None else runs.shortened(doc) for doc in docs]
        read = [short for short, _ in reads]
        if self._decoder is None:
            read = list(self.nlp.pipe(read))
        else:
            self._decoder.annotate_many(read)
        return [
            short if kept is None else _with_entities_of(short, doc, kept)
            for doc, short, (_, kept) in zip(docs, read, reads, strict=True)
        ]

    def memory_zone(self) -> AbstractContextManager[Any]:
        """A block whose documents must not be read after it. Until the vocabulary has added
        `KEPT_LEXEMES` words, the words it meets stay (the frequent ones come first; a
        1,000-character prompt of words it holds was read in 12 ms, of new ones in 17);
        past that, what its texts added is freed at its end (spaCy's `Language.memory_zone`)."""
        if len(self.nlp.vocab) < KEPT_LEXEMES:  # words added, freed ones included
            return contextlib.nullcontext()
        zone: AbstractContextManager[Any] = self.nlp.memory_zone()
        return zone

    def spacy_loop(self, text: str) -> Any:
        """`nlp(text)`: spaCy's own decoding loop, on the same network and BLAS threads."""
        if self._decoder is None:
            return self.nlp(text)
        with self._decoder.one_blas_thread():
            return self.nlp(text)

    def agrees_with_spacy(self, text: str) -> bool:
        def entities(doc: Any) -> list[tuple[int, int, str]]:
            return [(e.start_char, e.end_char, e.label_) for e in doc.ents]

        return entities(self(text)) == entities(self.spacy_loop(text))


@dataclass(frozen=True, slots=True)
class _LetterlessRuns:
    """Runs of tokens without a letter or a digit (quotes, `&#&#`, `,,,,`: a token a
    character, ~30 µs each to the network, where prose has one in ~4.5 characters), read
    with `keep` tokens at each end only. No name or date is in such a run's middle, and
    every token outside it keeps its neighbours within the network's reach, so reads as it
    did. What can change is an entity spaCy opened inside the run and ran on out of it (a
    run of "’" read as a title's opening, which swallowed the name after it)."""

    keep: int
    stretch: re.Pattern[str]  # more than 2 * keep characters without a letter or a digit

    @classmethod
    def for_pipeline(cls, nlp: Any) -> _LetterlessRuns | None:
        """For an NER whose token vectors see a known number of tokens each side (spaCy's
        window encoder: `depth` * `window_size`); None for any other (a transformer sees
        the whole text)."""
        try:
            tok2vec = nlp.config["components"]["ner"]["model"]["tok2vec"]
            embed, encode = tok2vec["embed"], tok2vec["encode"]
        except (KeyError, TypeError):
            return None
        if not str(embed.get("@architectures", "")).startswith("spacy.MultiHashEmbed."):
            return None
        if not str(encode.get("@architectures", "")).startswith("spacy.MaxoutWindowEncoder."):
            return None
        keep = _READ_AT_RUN_ENDS * encode["depth"] * encode["window_size"]
        return cls(keep, re.compile(rf"[\W_]{{{2 * keep + 1},}}"))

    def shortened(self, doc: Any) -> tuple[Any, list[int] | None]:
        """What the network reads of `doc`, and which of its tokens that is (None: all)."""
        stretches = [m.span() for m in self.stretch.finditer(doc.text)]
        if not stretches:
            return doc, None
        import numpy
        from spacy.attrs import IDX, LENGTH, NORM
        from spacy.tokens import Doc

        starts, lengths, norms = doc.to_array([IDX, LENGTH, NORM]).T
        ends = starts + lengths
        dropped = numpy.zeros(len(doc), dtype=bool)
        for stretch_start, stretch_end in stretches:  # the tokens wholly inside one
            first = int(numpy.searchsorted(starts, stretch_start, side="left"))
            last = int(numpy.searchsorted(ends, stretch_end, side="right"))
            if last - first > 2 * self.keep:
                dropped[first + self.keep : last - self.keep] = True
        if not dropped.any():
            return doc, None
        kept = numpy.flatnonzero(~dropped).tolist()
        short = Doc(
            doc.vocab,
            words=[doc[i].text for i in kept],
            spaces=[bool(doc[i].whitespace_) for i in kept],
        )
        short.from_array([NORM], norms[kept])  # the tokenizer's own, as "’" read as "'"
        return short, kept


def _with_entities_of(short: Any, doc: Any, kept: Sequence[int]) -> Any:
    """`doc` with the entities of `short`, the doc of its tokens `kept`."""
    from spacy.tokens import Span

    entities = [Span(doc, kept[e.start], kept[e.end - 1] + 1, e.label) for e in short.ents]
    doc.set_ents(entities, default="outside")
    return doc


@dataclass(frozen=True, slots=True)
class _Moves:
    """Class indices of the BILUO moves, by kind."""

    out: int
    begin: list[int]  # B-label, one per label
    unit: list[int]  # U-label, one per label
    inside: dict[int, tuple[int, int]]  # B-label class -> (I-label, L-label) classes
    labels: dict[int, str]  # B- or U-label class -> label

    @classmethod
    def of(cls, moves: Any) -> _Moves | None:
        names = [moves.get_class_name(i) for i in range(moves.n_moves)]
        index = {name: i for i, name in enumerate(names)}
        labelled = [n for n in names if n[:2] in ("B-", "I-", "L-", "U-") and len(n) > 2]
        labels = sorted({name[2:] for name in labelled})
        expected = {f"{m}-{label}" for m in "BILU" for label in labels}
        if "O" not in index or not expected <= set(names) or set(labelled) != expected:
            return None
        return cls(
            out=index["O"],
            begin=[index[f"B-{label}"] for label in labels],
            unit=[index[f"U-{label}"] for label in labels],
            inside={index[f"B-{lb}"]: (index[f"I-{lb}"], index[f"L-{lb}"]) for lb in labels},
            labels={index[f"{m}-{lb}"]: lb for m in "BU" for lb in labels},
        )


class _GreedyNerDecoder:
    def __init__(self, ner: Any, moves: _Moves) -> None:
        model = ner.model
        lower, upper = model.get_ref("lower"), model.get_ref("upper")
        n_features, n_hidden, n_pieces, n_inputs = (
            lower.get_dim(name) for name in ("nF", "nO", "nP", "nI")
        )
        self._moves = moves
        one_blas_thread = _one_blas_thread()
        if one_blas_thread is not None:
            from thinc.api import NumpyOps

            plain = NumpyOps(use_blis=False)
            for layer in model.walk():  # spaCy's own loop uses the same layers, so agrees
                layer.ops = plain
        self.one_blas_thread = one_blas_thread or contextlib.nullcontext
        self._ops = model.ops
        self._tok2vec = model.get_ref("tok2vec")
        self._shape = (n_features, n_hidden, n_pieces)
        self._lower_w = lower.get_param("W").reshape((n_features * n_hidden * n_pieces, n_inputs))
        self._lower_b = lower.get_param("b")
        self._padding = lower.get_param("pad")[0]
        self._upper_w = upper.get_param("W")
        self._upper_b = upper.get_param("b")

    @classmethod
    def for_pipeline(cls, nlp: Any) -> _GreedyNerDecoder | None:
        """A decoder for a pipeline made of one greedy BILUO NER component with spaCy's v2
        transition model (three state features, maxout hidden layer, output layer)."""
        from spacy.pipeline import EntityRecognizer
        from spacy.pipeline._parser_internals.ner import BiluoPushDown

        if list(nlp.pipe_names) != ["ner"]:
            return None
        ner = nlp.get_pipe("ner")
        model = getattr(ner, "model", None)
        if not isinstance(ner, EntityRecognizer) or model is None:
            return None
        if ner.cfg.get("beam_width") != 1 or not isinstance(ner.moves, BiluoPushDown):
            return None
        if model.name != "parser_model" or not model.attrs.get("has_upper"):
            return None
        if model.attrs.get("unseen_classes"):
            return None
        lower = model.get_ref("lower")
        if lower.get_dim("nF") != 3 or lower.get_dim("nP") < 2:
            return None
        moves = _Moves.of(ner.moves)
        return None if moves is None else cls(ner, moves)

    def annotate_many(self, docs: Sequence[Any]) -> None:
        """Set each doc's `ents` as spaCy's greedy NER would on a fresh document."""
        docs = [doc for doc in docs if len(doc)]
        if not docs:
            return
        with self.one_blas_thread():
            vectors = self._tok2vec.predict(list(docs))  # the docs' tokens, one after another
            start = 0
            for doc in docs:
                self._annotate(doc, vectors[start : start + len(doc)])
                start += len(doc)

    def _annotate(self, doc: Any, vectors: Any) -> None:
        import numpy
        from spacy.tokens import Span

        count = len(doc)
        sent_start, is_space = doc.to_array(["SENT_START", "IS_SPACE"]).T
        # An entity may not run into a token that starts a sentence.
        joins_next = numpy.append(sent_start[1:] != 1, False)
        # Each token's contribution to each state feature, (tokens, features, hidden,
        # pieces): the precomputed lower layer of spaCy's parser model.
        features = self._ops.gemm(vectors, self._lower_w, trans2=True)
        features = features.reshape((count, *self._shape))
        actions = self._moves_with_no_entity_open(features, joins_next, is_space == 1)
        moves, entities, token = self._moves, [], 0
        while token < count:
            action = actions[token]
            if action in moves.inside:
                end = self._entity_end(features, token, moves.inside[action], joins_next)
            else:
                end = token + 1
            if action != moves.out:
                entities.append(Span(doc, token, end, label=moves.labels[action]))
            token = end
        doc.set_ents(entities, default="outside")

    def _moves_with_no_entity_open(self, features: Any, joins_next: Any, is_space: Any) -> Any:
        """The best valid move at each token for a state with no entity open: "out", or
        "begin"/"unit" with a label (not on whitespace; "begin" only if the entity can
        continue to the next token)."""
        import numpy

        # No entity open: the second and third features are padding.
        hidden = features[:, 0] + self._padding[1] + self._padding[2] + self._lower_b
        scores = self._ops.gemm(hidden.max(axis=-1), self._upper_w, trans2=True)
        scores += self._upper_b
        valid = numpy.zeros(scores.shape, dtype=bool)
        valid[:, self._moves.out] = True
        valid[:, self._moves.unit] = ~is_space[:, None]
        valid[:, self._moves.begin] = (~is_space & joins_next)[:, None]
        return numpy.where(valid, scores, -numpy.inf).argmax(axis=1).tolist()

    def _entity_end(
        self, features: Any, start: int, in_last: tuple[int, int], joins_next: Any
    ) -> int:
        """Follow an entity begun at `start`: at each next token choose between "in" and
        "last" (the only valid moves once an entity is open) until "last"."""
        moves = list(in_last)
        weights, bias = self._upper_w[moves], self._upper_b[moves]
        token = start + 1
        while joins_next[token]:
            summed = features[token, 0] + features[start, 1] + features[token - 1, 2]
            score_in, score_last = weights @ (summed + self._lower_b).max(axis=-1) + bias
            # spaCy's argmax keeps the first of equal scores: compare in class order.
            if score_in < score_last or (score_in == score_last and moves[1] < moves[0]):
                break
            token += 1
        return token + 1


# threadpoolctl's limit is process-wide: two held at once (two detectors) could restore the
# thread count in the wrong order, so they are taken one at a time.
_BLAS_LIMIT_LOCK = threading.Lock()


def _one_blas_thread() -> Callable[[], AbstractContextManager[Any]] | None:
    """A context that keeps numpy's BLAS to one thread while it is held; None without
    threadpoolctl or a BLAS it knows."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        return None

    @contextlib.contextmanager
    def one_thread() -> Iterator[None]:
        with _BLAS_LIMIT_LOCK, blas.limit(limits=1):
            yield

    return one_thread
