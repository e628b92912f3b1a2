"""Switching one llama.cpp context between prompts without evaluating them again.

Before a prompt is evaluated, `ContextSwitcher.prepare`:
1. saves the live state into the model's `PromptCache` when the prompt would throw away at
   least `MIN_TOKENS_WORTH_SAVING` of its tokens (a conversation another one interrupts);
2. restores the saved state sharing the prompt's longest prefix, when that beats what the live
   context already shares and the copy is cheaper than the evaluation it spares.

`ContextSwitcher.evaluate_prompt` then evaluates the rest in pieces, so that a client who
leaves during a long prompt frees the model at once, and `Llama.generate` samples after it.
Saving only on a switch means a conversation that keeps the model to itself never pays for a
copy.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smallfirst.backends.prompt_cache import PromptCache, SavedState, shared_prefix_length

if TYPE_CHECKING:
    from smallfirst.backends.prompt_cache import TokenArray

log = logging.getLogger("smallfirst.backends")

# Fewer lost tokens are re-evaluated faster than a state is copied out and back in.
MIN_TOKENS_WORTH_SAVING = 64
# Evaluating a token costs ~1,000x restoring its state here (135M model: ~4 ms vs ~4.4 us;
# larger models evaluate slower for similar state sizes); restore when the spared evaluation
# outweighs the copy with a wide margin.
EVAL_TO_RESTORE_COST = 50
# A client that leaves during a long prompt frees the model within one piece (~0.5 s for the
# 135M model here). Pieces of 512 read ~8% faster with flash attention (229-244 vs 244-281
# tok/s for 2,048 tokens), not worth a 4x slower cancel; without it, 64-512 were alike.
PROMPT_PIECE_TOKENS = 128


@dataclass
class ReuseCounts:
    """Prompt tokens that were not evaluated again, since the model was first loaded."""

    from_context: int = 0  # the live context already held them
    from_saved: int = 0  # a restored state brought them back


class ContextSwitcher:
    """Saves and restores the states of one `Llama` through a `PromptCache`."""

    def __init__(self, llama: Any, capacity_bytes: int, reused: ReuseCounts) -> None:
        self._llama = llama
        self.cache = PromptCache(capacity_bytes)
        self.reused = reused

    def prepare(self, prompt: list[int]) -> int:
        """Bring the context to the longest known prefix of `prompt`; returns its length
        (what OpenAI calls cached tokens)."""
        llama = self._llama
        live = llama.input_ids[: llama.n_tokens]
        shared = shared_prefix_length(live, prompt)
        if worth_saving(self.cache, live, shared):
            self._save(live)
        match = self.cache.longest_prefix(prompt)
        if match is not None and worth_restoring(match.length - shared, match.state):
            if self._restore(match.state):
                reused = self._usable(match.length, prompt)
                self.reused.from_saved += reused
                return reused
            shared = 0
        reused = self._usable(shared, prompt)
        self.reused.from_context += reused
        return reused

    def evaluate_prompt(self, prompt: list[int], held: int, cancelled: threading.Event) -> bool:
        """Evaluate `prompt` after the `held` tokens `prepare` brought, but its last token
        (`Llama.generate` evaluates that one, to sample from its logits), in pieces, checking
        `cancelled` between them; False if it was set."""
        llama = self._llama
        end = len(prompt) - 1
        done = held
        llama.n_tokens = done  # `eval` drops what the context held past this
        piece = min(PROMPT_PIECE_TOKENS, llama.n_batch)
        while done < end:
            if cancelled.is_set():
                return False
            llama.eval(prompt[done : min(done + piece, end)])
            done = llama.n_tokens
        return True

    def _save(self, live: TokenArray) -> None:
        """Best effort: a state that does not fit in memory is simply not kept."""
        try:
            self.cache.add(SavedState(tokens=live.copy(), data=self._state_bytes()))
        except MemoryError:
            log.warning("no memory to save a %d-token prompt state; it is not kept", len(live))

    @staticmethod
    def _usable(shared: int, prompt: list[int]) -> int:
        # A prompt held whole still has its last token evaluated again, for fresh logits.
        return max(0, min(shared, len(prompt) - 1))

    def _state_bytes(self) -> bytearray:
        from llama_cpp import llama_cpp as low_level

        context = self._llama._ctx.ctx
        return copied_out(
            low_level.llama_state_get_size(context),
            lambda view, size: low_level.llama_state_get_data(context, view, size),
        )

    def _restore(self, state: SavedState) -> bool:
        from llama_cpp import llama_cpp as low_level

        llama = self._llama
        context = llama._ctx.ctx
        if not copied_in(
            state.data, lambda view, size: low_level.llama_state_set_data(context, view, size)
        ):  # the context may be half written: start it over
            llama.reset()
            return False
        count = len(state.tokens)
        llama.input_ids[:count] = state.tokens
        llama.n_tokens = count
        # The restored logits are not the live decode's: replay a token before sampling.
        llama._requires_eval = True
        return True


def worth_saving(cache: PromptCache, held: TokenArray, kept: int) -> bool:
    """Save `held` before only its first `kept` tokens are kept?"""
    return (
        cache.capacity_bytes > 0
        and len(held) - kept >= MIN_TOKENS_WORTH_SAVING
        and not cache.covers(held)
    )


def worth_restoring(gain: int, state: SavedState) -> bool:
    """Restore `state` to spare evaluating `gain` more tokens than the context holds?"""
    return gain > 0 and gain * EVAL_TO_RESTORE_COST >= len(state.tokens)


def copied_out(size: int, write: Callable[[Any, int], int]) -> bytearray:
    """A state of at most `size` bytes, which `write(buffer, size)` writes (and counts)."""
    data = bytearray(size)
    view = (ctypes.c_uint8 * size).from_buffer(data)
    written = write(view, size)
    del view  # a bytearray cannot be resized while ctypes holds it
    del data[written:]
    return data


def copied_in(data: bytearray, read: Callable[[Any, int], int]) -> bool:
    """Whether `read(buffer, size)` took the whole state (without copying it first)."""
    size = len(data)
    view = (ctypes.c_uint8 * size).from_buffer(data)
    taken = read(view, size)
    del view
    return bool(taken == size)
