"""Saved KV states of recent prompts, for one local model.

A local model's slots each keep one sequence, and a request reuses only the prefix it shares
with what its slot holds. When more conversations (or apps with long system prompts) take
turns than there are slots, each would evaluate its whole prompt again: ~4 ms per token for
the bundled 135M model on this CPU, 6.8 s for a 1,700-token prompt. Instead, a slot's state is
saved when another prompt is about to overwrite it, and a prompt starts from the saved state
that shares its longest prefix: restoring 1,700 tokens took 7.4 ms (docs/architecture.md).

Pure bookkeeping here (no llama.cpp calls), so it is tested without a model.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    TokenArray = npt.NDArray[np.intc]


def shared_prefix_length(a: Sequence[int] | TokenArray, b: Sequence[int] | TokenArray) -> int:
    """How many leading tokens `a` and `b` have in common."""
    import numpy as np

    n = min(len(a), len(b))
    if n == 0:
        return 0
    differs = np.asarray(a[:n]) != np.asarray(b[:n])
    first = int(differs.argmax())
    return first if differs[first] else n


# llama.cpp's serialized state of a sequence, writable (restored without a copy): mapped
# memory of its own (`llamacpp_state.copied_out`), or a bytearray.
StateData = bytearray | mmap.mmap


@dataclass(frozen=True)
class SavedState:
    tokens: TokenArray  # the tokens whose keys and values the state holds, in order
    data: StateData


@dataclass(frozen=True)
class PrefixMatch:
    state: SavedState
    length: int  # tokens the state shares with the prompt it was looked up for


class PromptCache:
    """Least-recently-used saved states within a byte budget."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[int, SavedState] = OrderedDict()
        self._keys = count()
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self._states)

    def covers(self, tokens: TokenArray) -> bool:
        """Some saved state starts with all of `tokens` (restoring it would give them back)."""
        return any(
            shared_prefix_length(saved.tokens, tokens) == len(tokens)
            for saved in self._states.values()
        )

    def add(self, state: SavedState) -> bool:
        """Keep `state`, dropping the states it extends and then the least recently used ones
        beyond the budget. False (nothing kept) when it alone is over the budget."""
        size = len(state.data)
        if size > self.capacity_bytes:
            return False
        for key, old in list(self._states.items()):
            if shared_prefix_length(old.tokens, state.tokens) == len(old.tokens):
                self._drop(key)
        while self._states and self.bytes_used + size > self.capacity_bytes:
            self._drop(next(iter(self._states)))
        self._states[next(self._keys)] = state
        self.bytes_used += size
        return True

    def discard(self, state: SavedState) -> None:
        """Drop `state` if it is kept (one that did not load)."""
        for key, kept in self._states.items():
            if kept is state:
                self._drop(key)
                return

    def clear(self) -> None:
        """Drop every state: its memory goes back to the system now."""
        self._states.clear()
        self.bytes_used = 0

    def longest_prefix(self, tokens: Sequence[int]) -> PrefixMatch | None:
        """The saved state sharing the most leading tokens with `tokens` (marked as used)."""
        best_key, best = -1, 0
        for key, state in self._states.items():
            length = shared_prefix_length(state.tokens, tokens)
            if length > best:
                best_key, best = key, length
        if best == 0:
            return None
        self._states.move_to_end(best_key)
        return PrefixMatch(self._states[best_key], best)

    def _drop(self, key: int) -> None:
        self.bytes_used -= len(self._states.pop(key).data)
