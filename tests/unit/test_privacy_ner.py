"""The NER runner's own decoding loop gives spaCy's entities, and is the one in use."""

from __future__ import annotations

from typing import Any

import pytest

from smallfirst.privacy import detect, shared_detector
from smallfirst.privacy.ner import NerRunner

TEXTS = [
    "",
    " ",
    "\n\n",
    "Paris",
    "New York",
    "John  Smith\n\nJane Doe",
    "Dear Dr. Anna Berg, your flight from Oslo to San Francisco leaves on Friday 3 May 2024.",
    "Maria Lindqvist works at Acme Corporation in Stockholm since 2019.\nCall her on Monday.",
    "The Rocky Mountains and Lake Geneva, then the Golden Gate Bridge at 5 pm on July 4th.",
    "Ship it to 6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677",
    "a " * 300,
    "Barack Obama met Angela Merkel in Berlin. " * 12,
]


@pytest.fixture(scope="module")
def runner() -> NerRunner:
    return shared_detector().ner


def test_the_fast_loop_is_used_for_the_default_model(runner: NerRunner) -> None:
    assert runner.fast


@pytest.mark.parametrize("text", TEXTS)
def test_entities_match_spacy(runner: NerRunner, text: str) -> None:
    assert runner.agrees_with_spacy(text)


def test_one_numpy_blas_thread_gives_the_entities_of_blis(runner: NerRunner) -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    def entities(doc: Any) -> list[tuple[int, int, str]]:
        return [(e.start_char, e.end_char, e.label_) for e in doc.ents]

    before = blas_threads()
    assert runner._decoder is not None
    assert runner._decoder._ops.use_blis is False
    reference = detect._load_spacy(detect.DEFAULT_SPACY_MODEL)  # a fresh pipeline: BLIS
    assert reference.get_pipe("ner").model.ops.use_blis is True
    for text in TEXTS:
        assert entities(runner(text)) == entities(reference(text))
    assert blas_threads() == before  # the one-thread limit ends with each call


def test_other_pipelines_run_through_spacy(runner: NerRunner) -> None:
    import spacy

    blank = spacy.blank("en")
    other = NerRunner(blank)
    assert not other.fast
    assert list(other("Hello Paris").ents) == []
    assert runner.nlp.pipe_names == ["ner"]


@pytest.mark.parametrize("run", ["\U0001f600" * 300, ")" * 300, "%" * 250 + "x" * 250])
def test_a_long_run_without_spaces_is_read_in_short_words(runner: NerRunner, run: str) -> None:
    """spaCy's tokenizer took time quadratic in such a run (16,000 emoji: 27 s, the guard's
    lock held); the entities still land on the text's own offsets."""
    text = f"I am Maria Gonzalez {run} and Anna Berg wrote."
    (doc,) = runner.many([text])
    assert len(doc.text) == len(text)
    assert max(len(word) for word in doc.text.split(" ")) <= 100
    people = [text[e.start_char : e.end_char] for e in doc.ents if e.label_ == "PERSON"]
    assert people == ["Maria Gonzalez", "Anna Berg"]


@pytest.mark.parametrize("run", ['"' * 100_000, "&#" * 50_000, ", " * 50_000, "\U0001f600" * 5_000])
@pytest.mark.parametrize("spacy_loop", [False, True])
def test_a_run_without_letters_is_read_at_its_ends_only(
    runner: NerRunner, monkeypatch: pytest.MonkeyPatch, run: str, spacy_loop: bool
) -> None:
    """Each quote or comma is a token the network reads (~30 µs; 100,000 took 8 s, with every
    other request's scan waiting for the lock); no name is in such a run's middle."""
    read: list[int] = []
    if spacy_loop:
        monkeypatch.setattr(runner, "_decoder", None)
        pipe = runner.nlp.pipe
        monkeypatch.setattr(
            runner.nlp, "pipe", lambda docs: pipe(read.extend(map(len, docs)) or docs)
        )
    else:
        assert runner._decoder is not None
        annotate = runner._decoder.annotate_many
        monkeypatch.setattr(
            runner._decoder,
            "annotate_many",
            lambda docs: annotate(read.extend(map(len, docs)) or docs),
        )
    text = f"I am Maria Gonzalez {run} and Anna Berg wrote."
    (doc,) = runner.many([text])
    assert len(read) == 1
    assert read[0] < 100  # tokens
    assert len(doc.text) == len(text)  # the entities land on the text's own offsets
    people = [text[e.start_char : e.end_char] for e in doc.ents if e.label_ == "PERSON"]
    assert people == ["Maria Gonzalez", "Anna Berg"]
