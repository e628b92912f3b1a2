"""The local models' memory budget (`LocalModelPool`): which loaded models go to make room."""

from __future__ import annotations

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


async def test_a_model_is_not_unloaded_while_its_tokenizer_runs() -> None:
    """Tokenizing runs beside answers, off the model's worker: another model's load freed the
    model under it, and the process aborted (SIGABRT) or counted 0 tokens."""
    from smallfirst.backends.llamacpp import LlamaCppBackend
    from smallfirst.config import LlamaCppModel
    from smallfirst.errors import ModelUnavailable

    backend = LlamaCppBackend(LlamaCppModel(id="m", tier="edge"), LocalModelPool(10**9))
    engine: Any = Engine()
    backend._engine = engine
    counter = await backend.token_counter()
    with backend.tokenizing(engine):
        assert not backend.try_unload()
    assert not engine.closed
    assert counter("four") == 4
    assert backend.try_unload()
    assert engine.closed
    with pytest.raises(ModelUnavailable, match="unloaded to make room"):
        counter("four")  # handed out before the unload: told, not run on a freed model
