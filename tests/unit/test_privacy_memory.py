"""The guard's memory over a long run: the vocabulary keeps a bounded number of words."""

from __future__ import annotations

from typing import Any

import pytest

from smallfirst.privacy import PiiDetector, ner

TEXTS = 200
KEPT = 50  # more words kept, as the test sets the bound
WORDS_PER_TEXT = 20  # at most, of a text below: one text is read whole, past the bound or not


def _unseen_words_text(n: int) -> str:
    """A prompt whose ids and names spaCy's vocabulary cannot hold yet."""
    return f"Ticket zq{n:07d}x for Vexlor{n}ind Quarmbey: order ref-{n * 7919:09d} is late."


def _lexemes(vocab: Any) -> int:
    """The lexemes the vocabulary holds (`len(vocab)` counts every one ever added)."""
    return sum(1 for _ in vocab)


def test_the_vocabulary_keeps_words_up_to_its_bound(
    detector: PiiDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocab = detector.ner.nlp.vocab
    detector.inspect(_unseen_words_text(-1))  # anything loaded on a first call, loaded
    monkeypatch.setattr(ner, "KEPT_LEXEMES", len(vocab) + KEPT, raising=False)
    strings, lexemes = len(vocab.strings), _lexemes(vocab)
    for n in range(TEXTS):
        detector.inspect(_unseen_words_text(n))
    # Unbounded, each of these texts' ids and names stayed for the life of the process: a
    # gateway reading unique ids grew without end.
    assert KEPT <= _lexemes(vocab) - lexemes <= KEPT + WORDS_PER_TEXT
    assert len(vocab.strings) - strings <= 3 * (KEPT + WORDS_PER_TEXT)
