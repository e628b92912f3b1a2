"""The one interface every engine implements. Backends know nothing of routing or HTTP."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import ClassVar, Protocol

from smallfirst.choices import fan_out
from smallfirst.completions import Chunk, Completion, ModelInfo
from smallfirst.config import ModelConfig
from smallfirst.types import GenerateRequest


@dataclass(frozen=True)
class PromptReuse:
    """Prompt tokens a local model did not evaluate again, and its saved prompt states."""

    from_context: int = 0
    from_saved: int = 0
    saved_bytes: int = 0


class Tokenizer(Protocol):
    """A model's own tokenizer, for clients that count or score in its token ids (the
    `/tokenize` endpoints; `/v1/completions` prompts given as ids)."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        """Tokens as the model reads a text prompt (`add_special_tokens`: its BOS, if any)."""
        ...

    def decode(self, tokens: list[int]) -> str: ...

    def info(self) -> dict[str, object]:
        """eos_token, bos_token, pad_token and chat_template (None where the model has none)."""
        ...


class Backend(ABC):
    """A model that can answer. `request.model` is the gateway's model id, not the engine's.

    `complete` and `stream` give one answer, whatever `request.n` says, unless the backend sets
    `answers_n_at_once`: then `stream` gives all `request.n` of them from one call, each chunk
    tagged with its answer's `index` (the gateway asks the others once per answer).
    """

    answers_n_at_once: ClassVar[bool] = False

    @abstractmethod
    def info(self) -> ModelInfo:
        """Static facts: tier, context length, costs; `loaded` for local engines."""

    @abstractmethod
    async def complete(self, request: GenerateRequest) -> Completion:
        """Generate the whole answer."""

    @abstractmethod
    def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Yield text pieces; the last has `finish_reason`, the last of all `usage` (`Chunk`).

        Closing the iterator early (client disconnect) must stop generation and free the
        engine.
        """

    def token_counter(self) -> AbstractAsyncContextManager[Callable[[str], int]]:
        """Counts tokens as this model does, within the `async with` block; engines without a
        tokenizer here over-estimate."""
        return nullcontext(_estimate_tokens)

    async def check_context(self, request: GenerateRequest) -> bool:
        """Raises ContextLengthExceeded, as answering would, when `request` does not fit this
        model's context; whether it could tell without answering (not a remote model)."""
        return False

    def tokenizer(self) -> AbstractAsyncContextManager[Tokenizer | None]:
        """The model's own tokenizer where it runs here, within the `async with` block; None
        for remote models."""
        return nullcontext(None)

    def queue_depth(self) -> int:
        """Requests waiting for this model (0 for engines that do not queue here)."""
        return 0

    def cancelled_generations(self) -> int:
        """Generations stopped before their answer ended, waiting or under way: their client
        went away, or the gateway stopped them (its shutdown, another prompt of a batch)."""
        return 0

    def answers(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """The stream of all `request.n` answers, each chunk tagged with its answer's
        `index`: one call, or one call per answer (`choices.fan_out`)."""
        if request.n == 1 or self.answers_n_at_once:
            return self.stream(request)
        return fan_out(self.stream, request, request.n)

    def upstream_errors(self) -> Mapping[str, int]:
        """Failed calls to a remote upstream so far, by kind (each attempt, retries included);
        empty for engines that run here."""
        return {}

    def slots_in_use(self) -> tuple[int, int] | None:
        """(answering now, slots in all) for engines that decode in slots, else None."""
        return None

    def queue_wait(self) -> tuple[int, float]:
        """Jobs started so far, and the seconds they waited in the queue in all."""
        return 0, 0.0

    def loads(self) -> tuple[int, int] | None:
        """(times loaded, times unloaded to make room) for engines loaded here, else None."""
        return None

    def prompt_reuse(self) -> PromptReuse:
        """Zeros for engines that keep no prompt state here."""
        return PromptReuse()

    async def preload(self) -> bool:
        """Get ready ahead of the first request where that costs time (loading weights);
        whether it is ready now."""
        return True

    def end_answers(self, error: BaseException) -> None:
        """End the answers under way with `error` (at shutdown), for engines whose answers
        would otherwise run on to their last token."""
        return None

    async def aclose(self) -> None:
        """Release resources (threads, connections, loaded weights)."""
        return None


def _estimate_tokens(text: str) -> int:
    # 3 characters per token over-counts English for common BPE vocabularies: safe for budgets.
    return len(text) // 3 + 1


def info_from_config(
    config: ModelConfig, *, loaded: bool = True, upstream: bool = False
) -> ModelInfo:
    """The facts every backend reports, straight from its model's config (`upstream`: it is
    answered over HTTP, `ModelInfo.upstream`)."""
    return ModelInfo(
        id=config.id,
        tier=config.tier,
        backend=config.backend,
        context_length=config.context_length,
        input_cost_per_1m=config.input_cost_per_1m,
        cached_input_cost_per_1m=config.cached_input_cost_per_1m,
        output_cost_per_1m=config.output_cost_per_1m,
        loaded=loaded,
        tools=config.tools,
        upstream=upstream,
    )
