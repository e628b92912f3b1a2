"""Saved prompt states: which are kept, which one a prompt starts from, and when a sequence
switching prompts saves or restores (the llama.cpp copy itself is in the integration
tests)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smallfirst.backends.llamacpp_state import (
    MIN_TOKENS_WORTH_SAVING,
    ReuseCounts,
    SequenceStates,
    copied_in,
    copied_out,
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


class FakeMemory:
    """Sequences as token lists; a saved state is the tokens, 4 bytes each."""

    def __init__(self) -> None:
        self.held: dict[int, list[int]] = {}
        self.out_of_memory = False
        self.writes_nothing = False  # llama.cpp failed to write a state: 0 bytes
        self.restore_fails = False
        self.saves = 0

    def hold(self, seq: int, tokens: list[int]) -> None:
        self.held[seq] = list(tokens)

    def keep(self, seq: int, count: int) -> bool:
        self.held[seq] = self.held.get(seq, [])[:count]
        return True

    def forget(self, seq: int) -> None:
        self.held[seq] = []

    def size(self, seq: int) -> int:
        return 4 * len(self.held[seq])

    def save(self, seq: int) -> bytearray:
        self.saves += 1
        if self.out_of_memory:
            raise MemoryError
        if self.writes_nothing:
            return bytearray()
        data = np.array(self.held[seq], dtype=np.intc).tobytes()
        return bytearray(data)

    def restore(self, seq: int, data: bytearray) -> bool:
        if self.restore_fails:
            self.held[seq] = [0]  # half written
            return False
        self.held[seq] = np.frombuffer(bytes(data), dtype=np.intc).tolist()
        return True

    def copy(self, source: int, target: int, count: int) -> None:
        self.held[target] = self.held.get(source, [])[:count]


def sequences(capacity: int = 1 << 20) -> tuple[SequenceStates, FakeMemory]:
    memory = FakeMemory()
    return SequenceStates(memory, PromptCache(capacity), ReuseCounts()), memory


def conversation(first: int, length: int) -> list[int]:
    return list(range(first, first + length))


def test_a_switch_saves_the_sequence_and_a_return_restores_it() -> None:
    states, memory = sequences()
    a, b = conversation(1000, 300), conversation(2000, 300)
    memory.hold(0, [*a, 7, 7])  # conversation a, with two answer tokens
    assert states.bring(0, memory.held[0], b) == 0
    assert len(states.cache) == 1
    memory.hold(0, b)
    assert states.bring(0, memory.held[0], [*a, 8]) == 300  # a's state came back
    assert memory.held[0] == a  # and only the prefix the prompt shares is kept
    assert states.reused.from_saved == 300
    assert states.reused.from_context == 0


def test_what_the_sequence_holds_is_kept_without_a_copy_when_the_prompt_continues_it() -> None:
    states, memory = sequences()
    a = conversation(1000, 300)
    memory.hold(0, a)
    assert states.bring(0, a, [*a, 5, 6]) == 300
    assert len(states.cache) == 0
    assert states.reused.from_context == 300
    assert states.bring(0, a, a) == 299  # a prompt held whole: its last token is read again
    assert memory.held[0] == a[:299]


def test_short_losses_are_not_saved_and_a_disabled_cache_saves_nothing() -> None:
    states, memory = sequences()
    memory.hold(0, conversation(1000, MIN_TOKENS_WORTH_SAVING - 1))
    states.bring(0, memory.held[0], conversation(2000, 10))
    assert len(states.cache) == 0
    off, memory = sequences(capacity=0)
    memory.hold(0, conversation(1000, 500))
    off.bring(0, memory.held[0], conversation(2000, 10))
    assert len(off.cache) == 0


def test_a_small_gain_does_not_pay_for_restoring_a_long_state() -> None:
    states, memory = sequences()
    shared, long_tail = conversation(1000, 100), conversation(5000, 2000)
    states.cache.add(SavedState(np.array([*shared, 1, *long_tail], dtype=np.intc), bytearray(8)))
    memory.hold(0, shared[:99])
    restored: list[Any] = []
    memory.restore = lambda seq, data: restored.append(data) or True  # type: ignore[method-assign]
    assert states.bring(0, shared[:99], [*shared, 1, 2]) == 99  # 2 more do not pay for 2,101
    assert restored == []


def test_a_state_that_does_not_fit_in_memory_is_not_kept_and_the_request_goes_on() -> None:
    states, memory = sequences()
    memory.out_of_memory = True
    memory.hold(0, conversation(1000, 300))
    assert states.bring(0, memory.held[0], conversation(2000, 300)) == 0
    assert len(states.cache) == 0


def test_a_state_over_the_cache_budget_is_not_copied_out() -> None:
    """The cache would drop it at once: copying it out (up to a whole context's cells, over
    1 GB for a 7B model at 8,192 tokens) only cost time and memory beyond the budget."""
    states, memory = sequences(capacity=4 * 299)
    memory.hold(0, conversation(1000, 300))
    assert states.bring(0, memory.held[0], conversation(2000, 10)) == 0
    assert memory.saves == 0
    memory.hold(0, conversation(1000, 299))  # one that fits is saved
    states.bring(0, memory.held[0], conversation(2000, 10))
    assert memory.saves == 1
    assert len(states.cache) == 1


def test_a_state_llama_cpp_did_not_write_is_not_kept() -> None:
    """Kept, its restore of no bytes counted as whole, and the prompt was answered as if its
    sequence held what it did not (cached_tokens claimed, an answer from one token)."""
    states, memory = sequences()
    a, b = conversation(1000, 300), conversation(2000, 300)
    memory.writes_nothing = True
    memory.hold(0, a)
    states.bring(0, a, b)
    assert len(states.cache) == 0
    memory.hold(0, b)
    memory.writes_nothing = False
    assert states.bring(0, b, [*a, 8]) == 0  # a is read again
    assert memory.held[0] == []


def test_nothing_to_restore_is_no_restore() -> None:
    assert not copied_in(bytearray(), lambda view, size: size)


def test_a_state_that_does_not_load_is_dropped_and_the_prompt_read_again() -> None:
    states, memory = sequences()
    a, b = conversation(1000, 300), conversation(2000, 300)
    memory.hold(0, a)
    states.bring(0, a, b)
    memory.hold(0, b)
    memory.restore_fails = True
    assert states.bring(0, b, [*a, 8]) == 0
    assert memory.held[0] == []  # nothing half written is kept
    assert states.reused == ReuseCounts()
    assert states.cache.longest_prefix(a) is None  # not tried again on every visit


STATUS = Path("/proc/self/status")


def resident_mb() -> float:
    return int(re.findall(r"VmRSS:\s+(\d+)", STATUS.read_text())[0]) / 1024


def filled_state(size: int) -> Any:
    def write(view: Any, room: int) -> int:
        ctypes.memset(view, 7, room)
        return room

    return copied_out(size, write)


def test_a_copied_out_state_is_trimmed_to_what_was_written_and_reads_back() -> None:
    data = copied_out(64, lambda view, room: ctypes.memmove(view, b"state", 5) and 5)
    assert len(data) == 5
    assert bytes(data) == b"state"
    taken: list[bytes] = []
    assert copied_in(data, lambda view, size: taken.append(bytes(view)) or size)
    assert taken == [b"state"]


@pytest.mark.skipif(not STATUS.exists(), reason="reads the resident size from /proc")
def test_dropped_states_give_their_memory_back_to_the_system() -> None:
    """Saved states churn through the cache for as long as the server runs. In bytearrays,
    after one state of up to 32 MB was freed, glibc served the next ones from its heap, and a
    dropped state's pages stayed resident behind whatever was allocated after it: here
    160 MB of dropped states stayed, and the QA soak's RSS kept growing with the cache at
    its budget."""
    filled_state(30 << 20)  # a large state saved, then dropped
    before = resident_mb()
    states, others = [], []
    for _ in range(20):
        states.append(filled_state(8 << 20))
        others.append(bytearray(1 << 20))  # the server allocates between two saves
    assert resident_mb() - before > 140  # the states are resident while they are kept
    states.clear()
    assert resident_mb() - before < 20 + 16  # the others stay; the states' 160 MB went back
