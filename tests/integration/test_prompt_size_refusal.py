"""A prompt that cannot fit the context is refused before llama.cpp's tokenizer reads it:
reading special tokens takes it time that grows with their number squared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.config import BUNDLED_MODEL
from smallfirst.errors import ContextLengthExceeded
from smallfirst.types import ChatRequest, TextRequest


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    engine = LlamaEngine(resolve_model_path(BUNDLED_MODEL), n_ctx=2048, n_threads=None, n_batch=512)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def unread(engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> LlamaEngine:
    """The engine, with llama.cpp's tokenizer out of reach of any long text, whole or in
    pieces."""
    tokenize = engine.llama.tokenize
    read = 0

    def short_only(text: bytes, *args: object, **kwargs: object) -> list[int]:
        nonlocal read
        read += len(text)
        assert read < 10_000, f"llama.cpp was asked to read {read:,} bytes"
        return tokenize(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.llama, "tokenize", short_only)
    return engine


@pytest.mark.parametrize(
    ("count", "told"),
    [
        # 100,000 such messages (3.5 MB as JSON) held the model's worker for ~17 minutes;
        # 16,000 took 26 s to tokenize alone: the byte bound refuses them
        (16_000, "at least"),
        # 6,000 pass the byte bound at 2,048 tokens (27 bytes each over the longest token's
        # 81), but their template's special tokens cannot fit: one <|im_start|> a turn and two
        # of the template's own. At 8,192 tokens 21,000 held the model's worker 32 s (QA)
        (6_000, "at least 6002 tokens"),
    ],
)
def test_many_short_messages_are_refused_without_reading_them(
    unread: LlamaEngine, count: int, told: str
) -> None:
    messages = [{"role": "user", "content": "a"}] * count
    request = ChatRequest.model_validate({"model": "m", "messages": messages})
    with pytest.raises(ContextLengthExceeded, match=told):
        unread.prepare(request)


def test_a_text_prompt_of_special_tokens_is_refused_without_reading_it(
    unread: LlamaEngine,
) -> None:
    request = TextRequest(model="m", prompt="<|im_start|>user\na<|im_end|>\n" * 16_000)
    with pytest.raises(ContextLengthExceeded, match="at least"):
        unread.prepare(request)


def test_a_prompt_near_the_limit_is_still_counted_exactly(engine: LlamaEngine) -> None:
    """The bound only refuses what cannot fit: a long prompt of white space and short words
    is tokenized and told with its exact count."""
    request = TextRequest(model="m", prompt="a  \n\n " * 3_000)  # 18,000 chars, 6,000 tokens+
    with pytest.raises(ContextLengthExceeded, match="in the prompt"):
        engine.prepare(request)
    fits = engine.prepare(TextRequest(model="m", prompt="a " * 1_000, max_tokens=8))
    assert 900 < len(fits.tokens) < 2048
