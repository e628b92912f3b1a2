"""Giving a llama.cpp sequence the longest known prefix of a prompt, so that the prompt is not
evaluated again from the start.

Before a slot reads a prompt, `SequenceStates.bring`:
1. saves what the sequence holds into the model's `PromptCache` when the prompt would throw
   away at least `MIN_TOKENS_WORTH_SAVING` of it (a conversation another one interrupts);
2. restores the saved state sharing the prompt's longest prefix, when that beats what the
   sequence already shares and the copy is cheaper than the evaluation it spares;
3. drops the cells past the prefix it keeps.

Saving only on a switch means a conversation that keeps its slot never pays for a copy.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from smallfirst.backends.prompt_cache import (
    PromptCache,
    SavedState,
    StateData,
    shared_prefix_length,
)

if TYPE_CHECKING:
    from smallfirst.backends.prompt_cache import TokenArray

log = logging.getLogger("smallfirst.backends")

# Fewer lost tokens are re-evaluated faster than a state is copied out and back in.
MIN_TOKENS_WORTH_SAVING = 64
# Evaluating a token costs ~1,000x restoring its state here (135M model: ~4 ms vs ~4.4 us;
# larger models evaluate slower for similar state sizes); restore when the spared evaluation
# outweighs the copy with a wide margin.
EVAL_TO_RESTORE_COST = 50


@dataclass
class ReuseCounts:
    """Prompt tokens that were not evaluated again, since the model was first loaded."""

    from_context: int = 0  # the sequence already held them
    from_saved: int = 0  # a restored state brought them back


class SequenceMemory(Protocol):
    """The key-value cells of a context's sequences."""

    def keep(self, seq: int, count: int) -> bool:
        """Drop the sequence's cells from position `count` on; False if it cannot."""

    def forget(self, seq: int) -> None:
        """Drop all of the sequence's cells."""

    def size(self, seq: int) -> int:
        """The bytes of the sequence's state (what `save` would copy)."""

    def save(self, seq: int) -> StateData:
        """The sequence's state (MemoryError when there is no room for it; empty when
        llama.cpp could not write it)."""

    def restore(self, seq: int, data: StateData) -> bool:
        """Load a saved state into an empty sequence; False if it was not taken whole."""

    def copy(self, source: int, target: int, count: int) -> None:
        """Make `target` hold the first `count` cells of `source` (and nothing else)."""


class SequenceStates:
    """Saves and restores sequences through a `PromptCache`."""

    def __init__(self, memory: SequenceMemory, cache: PromptCache, reused: ReuseCounts) -> None:
        self.memory = memory
        self.cache = cache
        self.reused = reused

    def bring(self, seq: int, held: list[int], prompt: list[int]) -> int:
        """Make `seq`, which holds `held`, hold the longest known prefix of `prompt` and
        nothing after it; returns that prefix's length (what OpenAI calls cached tokens). The
        prompt's last token is never counted as held: its logits are sampled from, so it is
        evaluated again."""
        import numpy as np

        held_tokens = np.asarray(held, dtype=np.intc)
        shared = shared_prefix_length(held_tokens, prompt)
        if worth_saving(self.cache, held_tokens, shared):
            self._save(seq, held_tokens)
        restored = False
        match = self.cache.longest_prefix(prompt)
        if match is not None and worth_restoring(match.length - shared, match.state):
            self.memory.forget(seq)
            restored = self.memory.restore(seq, match.state.data)
            shared = match.length if restored else 0
            if not restored:  # it may be half written, and would fail again
                self.memory.forget(seq)
                self.cache.discard(match.state)
                log.warning("a saved %d-token prompt state did not load", len(match.state.tokens))
        kept = max(0, min(shared, len(prompt) - 1))
        if not self.memory.keep(seq, kept):
            self.memory.forget(seq)
            return 0
        if restored:
            self.reused.from_saved += kept
        else:
            self.reused.from_context += kept
        return kept

    def _save(self, seq: int, held: TokenArray) -> None:
        """Best effort: a state that does not fit in memory or the cache's budget, or that
        llama.cpp could not write, is simply not kept."""
        if self.memory.size(seq) > self.cache.capacity_bytes:
            return  # the cache would not keep it: no copy (up to a whole context's cells)
        try:
            data = self.memory.save(seq)
        except MemoryError:
            log.warning("no memory to save a %d-token prompt state; it is not kept", len(held))
            return
        if not data:  # restoring no bytes "succeeds", and the prompt would be taken as held
            log.warning("llama.cpp did not write a %d-token prompt state", len(held))
            return
        self.cache.add(SavedState(tokens=held, data=data))


class LlamaSequenceMemory:
    """`SequenceMemory` over a llama.cpp context (`llama_memory_seq_rm`, `llama_state_seq_*`)."""

    def __init__(self, context: Any) -> None:
        from llama_cpp import llama_cpp as low_level

        self._low = low_level
        self._context = context

    def keep(self, seq: int, count: int) -> bool:
        return bool(self._low.llama_memory_seq_rm(self._context.memory, seq, count, -1))

    def forget(self, seq: int) -> None:
        self._low.llama_memory_seq_rm(self._context.memory, seq, -1, -1)

    def size(self, seq: int) -> int:
        return int(self._low.llama_state_seq_get_size(self._context.ctx, seq))

    def save(self, seq: int) -> StateData:
        low, context = self._low, self._context.ctx
        return copied_out(
            self.size(seq),
            lambda view, size: low.llama_state_seq_get_data(context, view, size, seq),
        )

    def restore(self, seq: int, data: StateData) -> bool:
        low, context = self._low, self._context.ctx
        return copied_in(
            data, lambda view, size: low.llama_state_seq_set_data(context, view, size, seq)
        )

    def copy(self, source: int, target: int, count: int) -> None:
        # Sequences in separate streams (kv_unified off) are copied whole: llama.cpp takes the
        # cells' positions now and copies the buffers at the start of the next decode, before
        # it computes anything. The cells past `count` are then dropped from the copy.
        self.forget(target)
        self._low.llama_memory_seq_cp(self._context.memory, source, target, -1, -1)
        self.keep(target, count)


def worth_saving(cache: PromptCache, held: TokenArray, kept: int) -> bool:
    """Save `held` before only its first `kept` tokens are kept?"""
    return (
        cache.capacity_bytes > 0
        and len(held) - kept >= MIN_TOKENS_WORTH_SAVING
        and not cache.covers(held)
    )


def worth_restoring(gain: int, state: SavedState) -> bool:
    """Restore `state` to spare evaluating `gain` more tokens than the sequence holds?"""
    return gain > 0 and gain * EVAL_TO_RESTORE_COST >= len(state.tokens)


def copied_out(size: int, write: Callable[[Any, int], int]) -> StateData:
    """A state of at most `size` bytes, which `write(buffer, size)` writes (and counts).

    In memory mapped for it alone, which goes back to the system when the state is dropped. A
    bytearray came from malloc: once a state of up to 32 MB had been freed, glibc served the
    next ones from its heap, where a dropped state's pages stayed resident behind anything
    allocated after it (QA soak: RSS kept growing with the cache at its budget; malloc_trim
    gave back 168 MiB)."""
    if size <= 0:
        return bytearray()
    try:
        data = mmap.mmap(-1, size)
    except OSError as exc:  # ENOMEM: what bytearray raised, so the state is just not kept
        raise MemoryError(str(exc)) from exc
    view = (ctypes.c_uint8 * size).from_buffer(data)
    written = write(view, size)
    del view  # a mapping cannot be resized while ctypes holds it
    if written <= 0:
        return bytearray()
    if written < size:
        data.resize(written)
    return data


def copied_in(data: StateData, read: Callable[[Any, int], int]) -> bool:
    """Whether `read(buffer, size)` took the whole state (without copying it first); an
    empty one is no state."""
    size = len(data)
    if size == 0:
        return False
    view = (ctypes.c_uint8 * size).from_buffer(data)
    taken = read(view, size)
    del view
    return bool(taken == size)
