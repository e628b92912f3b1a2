"""Saved prompt states: which are kept, which one a prompt starts from, and when a context
switch saves or restores (the llama.cpp copy itself is in the integration test)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from smallfirst.backends.llamacpp_state import (
    MIN_TOKENS_WORTH_SAVING,
    PROMPT_PIECE_TOKENS,
    ContextSwitcher,
    ReuseCounts,
)
from smallfirst.backends.prompt_cache import PromptCache, SavedState, shared_prefix_length


def state(tokens: list[int], size: int = 10) -> SavedState:
    return SavedState(tokens=np.array(tokens, dtype=np.intc), data=bytearray(size))


def test_shared_prefix_length() -> None:
    assert shared_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert shared_prefix_length([1, 2], [1, 2, 3]) == 2
    assert shared_prefix_length([5], [1]) == 0
    assert shared_prefix_length([], [1]) == 0


def test_the_longest_shared_prefix_wins() -> None:
    cache = PromptCache(1000)
    cache.add(state([1, 2, 3]))
    cache.add(state([1, 2, 9, 9]))
    match = cache.longest_prefix([1, 2, 9, 5])
    assert match is not None
    assert match.length == 3
    assert match.state.tokens.tolist() == [1, 2, 9, 9]
    assert cache.longest_prefix([7, 7]) is None


def test_a_state_that_extends_another_replaces_it() -> None:
    cache = PromptCache(1000)
    cache.add(state([1, 2]))
    cache.add(state([1, 2, 3, 4]))
    assert len(cache) == 1
    assert cache.bytes_used == 10
    assert cache.covers(np.array([1, 2, 3], dtype=np.intc))
    assert not cache.covers(np.array([1, 2, 3, 5], dtype=np.intc))


def test_the_least_recently_used_state_goes_first_and_the_budget_holds() -> None:
    cache = PromptCache(25)
    cache.add(state([1]))
    cache.add(state([2]))
    cache.longest_prefix([1])  # [1] is now the most recently used
    cache.add(state([3]))
    kept = {int(s.tokens[0]) for s in cache._states.values()}
    assert kept == {1, 3}
    assert cache.bytes_used == 20
    assert not cache.add(state([4], size=26))  # alone over the budget: not kept
    assert cache.bytes_used == 20


class FakeLlama:
    n_batch = 512

    def __init__(self, on_eval: Callable[[], None] = lambda: None) -> None:
        self.input_ids = np.zeros(4096, dtype=np.intc)
        self.n_tokens = 0
        self._requires_eval = False
        self.pieces: list[int] = []
        self._on_eval = on_eval

    def hold(self, tokens: list[int]) -> None:
        self.input_ids[: len(tokens)] = tokens
        self.n_tokens = len(tokens)

    def eval(self, tokens: list[int]) -> None:
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.pieces.append(len(tokens))
        self._on_eval()


class RecordingSwitcher(ContextSwitcher):
    """Copies token lists instead of llama.cpp states."""

    def _state_bytes(self) -> bytearray:
        return bytearray(4 * self._llama.n_tokens)

    def _restore(self, saved: SavedState) -> bool:
        self._llama.hold(saved.tokens.tolist())
        return True


def switcher(capacity: int = 1 << 20) -> tuple[RecordingSwitcher, FakeLlama]:
    llama = FakeLlama()
    return RecordingSwitcher(llama, capacity, ReuseCounts()), llama


def conversation(first: int, length: int) -> list[int]:
    return list(range(first, first + length))


def test_a_switch_saves_the_live_context_and_a_return_restores_it() -> None:
    switch, llama = switcher()
    a, b = conversation(1000, 300), conversation(2000, 300)
    llama.hold([*a, 7, 7])  # conversation a, with two answer tokens
    assert switch.prepare(b) == 0
    assert len(switch.cache) == 1
    llama.hold(b)
    assert switch.prepare([*a, 8]) == 300  # a's state came back
    assert llama.input_ids[: llama.n_tokens].tolist() == [*a, 7, 7]
    assert switch.reused.from_saved == 300
    assert switch.reused.from_context == 0


def test_the_live_context_is_kept_without_a_copy_when_the_prompt_continues_it() -> None:
    switch, llama = switcher()
    a = conversation(1000, 300)
    llama.hold(a)
    assert switch.prepare([*a, 5, 6]) == 300
    assert len(switch.cache) == 0
    assert switch.reused.from_context == 300
    assert switch.prepare(a) == 299  # a prompt held whole: its last token is evaluated again


def test_short_losses_are_not_saved_and_a_disabled_cache_saves_nothing() -> None:
    switch, llama = switcher()
    llama.hold(conversation(1000, MIN_TOKENS_WORTH_SAVING - 1))
    switch.prepare(conversation(2000, 10))
    assert len(switch.cache) == 0
    off, llama = switcher(capacity=0)
    llama.hold(conversation(1000, 500))
    off.prepare(conversation(2000, 10))
    assert len(off.cache) == 0


def test_a_small_gain_does_not_pay_for_restoring_a_long_state() -> None:
    switch, llama = switcher()
    shared, long_tail = conversation(1000, 100), conversation(5000, 2000)
    switch.cache.add(SavedState(np.array([*shared, 1, *long_tail], dtype=np.intc), bytearray(8)))
    llama.hold(shared[:99])
    restored: list[Any] = []
    switch._restore = lambda saved: restored.append(saved) or True  # type: ignore[method-assign]
    assert switch.prepare([*shared, 1, 2]) == 99  # 2 more tokens do not pay for 2,101
    assert restored == []


def test_the_prompt_is_read_in_pieces_after_what_the_context_holds() -> None:
    switch, llama = switcher()
    prompt = conversation(1000, 500)
    llama.hold([*prompt[:100], 5, 5])  # shares 100 tokens, then differs
    assert switch.evaluate_prompt(prompt, switch.prepare(prompt), threading.Event())
    assert llama.pieces[0] == PROMPT_PIECE_TOKENS
    assert sum(llama.pieces) == 399  # all but the last token, which generate() samples after
    assert llama.input_ids[: llama.n_tokens].tolist() == prompt[:-1]


def test_a_client_that_leaves_stops_the_prompt_within_a_piece() -> None:
    cancelled = threading.Event()
    llama = FakeLlama(on_eval=cancelled.set)  # the client leaves during the first piece
    switch = RecordingSwitcher(llama, 1 << 20, ReuseCounts())
    assert not switch.evaluate_prompt(conversation(1000, 2000), 0, cancelled)
    assert llama.pieces == [PROMPT_PIECE_TOKENS]


def test_a_state_that_does_not_fit_in_memory_is_not_kept_and_the_request_goes_on() -> None:
    switch, llama = switcher()

    def no_memory() -> Any:
        raise MemoryError

    switch._state_bytes = no_memory  # type: ignore[method-assign]
    llama.hold(conversation(1000, 300))
    assert switch.prepare(conversation(2000, 300)) == 0
    assert len(switch.cache) == 0
