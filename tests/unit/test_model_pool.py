"""The local models' memory budget (`LocalModelPool`): which loaded models go to make room."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from smallfirst.backends.llamacpp import LocalModelPool


class Member:
    """What the pool reads of a `LlamaCppBackend`."""

    def __init__(self, pool: LocalModelPool, loaded_bytes: int, last_used: float) -> None:
        self.loaded_bytes = loaded_bytes
        self.last_used = last_used
        self.engine_loaded = loaded_bytes > 0
        self.busy = False
        self.loaded_bytes_before_unload = 0
        member: Any = self
        pool.join(member)

    def try_unload(self) -> bool:
        if self.busy:
            return False
        self.loaded_bytes_before_unload, self.loaded_bytes = self.loaded_bytes, 0
        self.engine_loaded = False
        return True


def test_the_least_recently_used_idle_models_go_until_the_newcomer_fits() -> None:
    pool = LocalModelPool(budget_bytes=100)
    oldest, busy, recent = Member(pool, 40, 1.0), Member(pool, 30, 2.0), Member(pool, 20, 3.0)
    busy.busy = True
    newcomer: Any = Member(pool, 0, 4.0)
    pool.make_room(45, newcomer)  # 90 loaded + 45 > 100
    assert not oldest.engine_loaded  # 50 + 45 fits: nothing more goes
    assert busy.engine_loaded
    assert recent.engine_loaded
    pool.make_room(75, newcomer)  # 50 + 75 > 100: the busy one stays, the idle one goes
    assert busy.engine_loaded
    assert not recent.engine_loaded


def test_room_is_made_again_when_a_model_turns_out_bigger_than_its_file() -> None:
    """As a backend asks: for the file before loading, then for the weights, key-value cells
    and saved states once loaded (end to end: test_parallel_slots.py)."""
    pool = LocalModelPool(budget_bytes=100)
    other = Member(pool, 30, 1.0)
    loading: Any = Member(pool, 0, 2.0)
    pool.make_room(50, loading)  # the file alone fits beside the other model
    assert other.engine_loaded
    pool.make_room(90, loading)  # with its context it does not
    assert not other.engine_loaded


def test_a_preload_asks_for_room_without_taking_it() -> None:
    pool = LocalModelPool(budget_bytes=100)
    other = Member(pool, 60, 1.0)
    loading: Any = Member(pool, 0, 2.0)
    assert pool.has_room(40, loading)
    assert not pool.has_room(41, loading)
    assert other.engine_loaded  # asking never unloads


class Engine:
    """What `LlamaCppBackend` does with its engine here: count tokens, and close it."""

    vocab_size = 10
    closed = False
    file_size = saved_bytes = 0
    slots = SimpleNamespace(kv_bytes=0)

    def count_tokens(self, text: str) -> int:
        return len(text)

    def close(self) -> None:
        self.closed = True


def local_backend() -> Any:
    from smallfirst.backends.llamacpp import LlamaCppBackend
    from smallfirst.config import LlamaCppModel

    return LlamaCppBackend(LlamaCppModel(id="m", tier="edge"), LocalModelPool(10**9))


async def test_a_model_is_not_unloaded_while_its_tokenizer_is_in_use() -> None:
    """Tokenizing runs beside answers, off the model's worker: another model's load freed the
    model under it, and the process aborted (SIGABRT) or counted 0 tokens."""
    backend, engine = local_backend(), Engine()
    backend._engine = engine
    async with backend.token_counter() as count_tokens:
        assert not backend.try_unload()
        assert count_tokens("four") == 4
    assert not engine.closed
    assert backend.try_unload()
    assert engine.closed


async def test_a_tokenizer_whose_model_was_unloaded_before_it_was_used_loads_it_again() -> None:
    """QA, two models under a budget for one: another model's load unloaded this one between
    a RAG request's token counts, or before a token-id prompt was read, and the request was a
    503 ("unloaded to make room for another; retry"), 1 in 20 of them. The tokenizer now keeps
    the model loaded for its whole block, and loads it again if it went before the block."""
    backend = local_backend()
    engines = [Engine(), Engine()]

    def load_then_lose_the_first() -> Any:
        engine = engines.pop(0)
        # the first is unloaded by another model's worker as soon as its load job ends
        backend._engine = engine if not engines else None
        return engine

    backend._ensure_engine = load_then_lose_the_first
    async with backend.tokenizer() as tokenizer:
        assert not engines  # loaded twice
        assert tokenizer is backend._engine
        assert tokenizer.count_tokens("four") == 4
        assert not backend.try_unload()


async def test_closing_at_shutdown_is_no_unload_to_make_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every shutdown logged "unloaded m to make room within local.memory_budget_mb" and
    counted an unload in `smallfirst_model_loads`, as if the budget had pushed it out."""
    backend, engine = local_backend(), Engine()
    backend._engine = engine
    with caplog.at_level(logging.INFO, logger="smallfirst.backends"):
        await backend.aclose()
    assert engine.closed
    assert backend.loads() == (0, 0)
    assert "make room" not in caplog.text
