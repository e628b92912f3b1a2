"""Two conversations taking turns on one local model: the second visit to a prompt starts
from its saved state (`backends/llamacpp_state.py`) instead of evaluating it again."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.backends.prompt_cache import SavedState
from smallfirst.config import BUNDLED_MODEL
from tests.integration.conftest import Server, logged, prompt_tokens_reused
from tests.integration.conftest import openai_client as client

MODEL = "smollm2-135m"
pytestmark = pytest.mark.integration


def _system(topic: str) -> str:
    return " ".join(
        f"Rule {i}: answer questions about {topic} in one short line." for i in range(40)
    )


def _ask(gateway: Server, topic: str) -> tuple[str, int, int, str]:
    reply = client(gateway).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": _system(topic)},
            {"role": "user", "content": f"Tell me one fact about {topic}."},
        ],
        max_tokens=12,
        temperature=0,
    )
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    log_id = reply.id.removeprefix("chatcmpl-")  # the request log keys rows by the bare id
    return reply.choices[0].message.content or "", usage.prompt_tokens, cached, log_id


def test_a_conversation_another_one_interrupted_resumes_from_its_saved_state(
    gateway: Server,
) -> None:
    _ask(gateway, "the moon")
    again, prompt_tokens, kept, _ = _ask(gateway, "the moon")
    assert prompt_tokens > 300
    assert kept == prompt_tokens - 1  # its slot held it: only the last token again

    _, _, shared, _ = _ask(gateway, "volcanoes")
    assert shared < prompt_tokens // 2  # another prompt: the context switched

    restored_before = prompt_tokens_reused(gateway, MODEL, "saved")
    resumed, prompt_tokens, cached, request_id = _ask(gateway, "the moon")
    assert cached == prompt_tokens - 1
    assert prompt_tokens_reused(gateway, MODEL, "saved") - restored_before == cached
    assert resumed == again  # greedy, from the same keys and values: the same answer
    assert _logged_cached_tokens(gateway, request_id) == cached


def _logged_cached_tokens(gateway: Server, request_id: str) -> int:
    return int(logged(gateway, "cached_tokens", request_id))


def test_closing_a_model_frees_its_saved_states_at_once() -> None:
    """An unload counts the saved states as freed; the engine and its slot decoder refer to
    each other, so without dropping them on close, up to `prompt_cache_mb` stayed resident
    until the cycle collector ran (gc off here, to stand for it not having run yet)."""
    engine = LlamaEngine(
        resolve_model_path(BUNDLED_MODEL),
        n_ctx=256,
        n_threads=None,
        n_batch=64,
        prompt_cache_bytes=1 << 20,
    )
    saved = SavedState(np.arange(100, dtype=np.intc), bytearray(1000))
    assert engine.slots.states.cache.add(saved)
    still_saved = weakref.ref(saved)
    del saved
    gc.disable()
    try:
        engine.close()
        del engine
        assert still_saved() is None
    finally:
        gc.enable()
