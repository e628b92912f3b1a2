"""Several answers decoded together in one llama.cpp context (continuous batching).

A model with `parallel: N` gets a context of N sequences, each with the model's full
`context_length`. Every `step` is one `llama_decode` holding the next token of each answer
being generated plus a piece of the prompts still being read; a request joins at the next
step and leaves when its answer is over, so a short request no longer waits for a long one,
and N answers share each pass over the weights (about 2x the tokens per second with 4 slots
for the bundled model here: docs/architecture.md).

Each slot keeps what its sequence holds after an answer, and a new prompt goes to the free
slot that shares its longest prefix (of 64 tokens at least; else the least recently used):
N conversations keep their prompts in place. Beyond
that, a sequence's state is saved and restored within the model's `prompt_cache_mb`
(`llamacpp_state.py`). Sampling is per slot: each has its own llama.cpp sampler chain
(grammar included), built by `Llama`'s own factory with `Llama.generate`'s defaults, so
greedy answers are those of `Llama` answering one request at a time.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smallfirst.backends.llamacpp_answer import (
    AnswerWriter,
    PreparedPrompt,
    PromptEcho,
    token_logprob,
    unscored_token,
)
from smallfirst.backends.llamacpp_scores import ScoredPrefix
from smallfirst.backends.llamacpp_state import (
    LlamaSequenceMemory,
    ReuseCounts,
    SequenceStates,
)
from smallfirst.backends.prompt_cache import PromptCache, shared_prefix_length
from smallfirst.completions import TokenLogprob, Usage
from smallfirst.gguf_header import kv_bytes_per_token
from smallfirst.types import GenerateRequest, TextRequest

if TYPE_CHECKING:
    from smallfirst.backends.llamacpp_engine import LlamaEngine


# A client that leaves during a long prompt frees its slot within one piece (~0.5 s for the
# 135M model here), and answers under way get a token per piece. Pieces of 512 read ~8%
# faster with flash attention (229-244 vs 244-281 tok/s for 2,048 tokens), not worth a 4x
# slower cancel; without it, 64-512 were alike.
PROMPT_PIECE_TOKENS = 128
# A slot copies a prefix from another slot's sequence when that spares reading at least this
# many tokens: copying a sequence copies its whole buffer (all context_length cells). A free
# slot is chosen for the prefix it holds from this many shared tokens on, too.
MIN_SHARED_TOKENS = 64


@dataclass(eq=False)  # held by identity, kept in a set
class Places:
    """Places in a model's slots and queue held for one request's `n` answers, so that its
    later answers cannot be refused half-way (`SlotScheduler.reserve`); each answer takes
    one while it waits or decodes."""

    count: int
    in_use: int = 0
    # One of its answers has had a slot: the others are no longer refused for waiting
    # (`queue_timeout_s`), which would throw the answers made away.
    begun: bool = False


@dataclass(eq=False)  # a job is itself: hashed by identity, kept in sets
class SlotJob:
    """A request on its way through the slots; `emit` receives its chunks (or its error)."""

    request: GenerateRequest
    emit: Callable[[object], None]
    cancelled: threading.Event
    submitted: float  # time.monotonic() when it was queued
    places: Places | None = None  # the reservation it came in on (an answer of `n`)
    admitted: float | None = None  # time.monotonic() when a slot took it
    answer: AnswerWriter | None = None  # once a slot has its prompt

    def usage(self) -> Usage | None:
        """Its tokens so far; None while it waits for a slot."""
        return self.answer.usage() if self.answer is not None else None


class _Slot:
    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.tokens: list[int] = []  # what the sequence holds, in order
        self.last_used = 0
        self.job: SlotJob | None = None
        self.pending: list[int] = []  # prompt tokens not read yet
        self.next_token: int | None = None  # sampled, to be read in the next step
        self.logits_at: int | None = None  # this step's batch row with the slot's logits
        self.sampler: Any = None
        self.top_logprobs: int | None = None
        self.prompt: list[int] = []
        # Another slot holding (or reading) a longer prefix of this prompt: this one waits
        # for it to hold `share_upto` tokens, copies them, then reads the rest.
        self.donor: _Slot | None = None
        self.donor_job: SlotJob | None = None
        self.share_upto = 0
        # An echoed prompt (`echo`) is read with logits on every row: each row's logits give
        # the next prompt token's logprob. (row, position) of this step's rows.
        self.echo: PromptEcho | None = None
        self.echo_rows: list[tuple[int, int]] = []
        self.scored = ScoredPrefix()  # what echoes learned of the tokens it holds

    @property
    def answer(self) -> AnswerWriter | None:
        """The answer of the job it holds, once `SlotDecoder.start` has taken its prompt."""
        return self.job.answer if self.job is not None else None


@dataclass(frozen=True)
class _Entry:
    """Tokens of one slot in a step's batch; `logits`: keep the last one's (to sample)."""

    slot: _Slot
    tokens: list[int]
    logits: bool


class SlotDecoder:
    """N sequences of one model. Not thread-safe: only the model's worker thread calls it."""

    def __init__(
        self,
        engine: LlamaEngine,
        *,
        n_ctx: int,
        parallel: int,
        n_batch: int,
        cache: PromptCache,
        reused: ReuseCounts,
    ) -> None:
        from llama_cpp import _internals as internals
        from llama_cpp import llama_cpp as low_level

        self._engine = engine
        self._low = low_level
        llama = engine.llama
        params = low_level.llama_context_default_params()
        for field in low_level.llama_context_params._fields_:
            setattr(params, field[0], getattr(llama.context_params, field[0]))
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        params.kv_unified = False  # each sequence has its own n_ctx cells
        params.n_batch = params.n_ubatch = n_batch
        self._context: Any = internals.LlamaContext(
            model=llama._model, params=params, verbose=False
        )
        # Allocated up front for every cell of every slot, so it counts toward the budget.
        self.kv_bytes = params.n_ctx * model_kv_bytes_per_token(llama._model.model)
        adapter: Any = llama._lora_adapter
        if adapter is not None:  # applied to each context, as `Llama` does to its own
            adapters = (low_level.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(llama.lora_scale)
            if low_level.llama_set_adapters_lora(self._context.ctx, adapters, 1, scales):
                raise RuntimeError(f"failed to set the LoRA adapter {llama.lora_path}")
        self.states = SequenceStates(LlamaSequenceMemory(self._context), cache, reused)
        self._n_batch = n_batch
        self._batch = low_level.llama_batch_init(n_batch, 0, 1)
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._uses = itertools.count(1)
        self._n_vocab = llama.n_vocab()

    def close(self) -> None:
        # The engine and its decoder refer to each other: only the cycle collector frees
        # them, which may take long after an unload has counted their memory as free.
        self.states.cache.clear()
        if self._batch is not None:
            self._low.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()

    @property
    def free_slots(self) -> int:
        return sum(slot.job is None for slot in self._slots)

    @property
    def busy(self) -> bool:
        return any(slot.job is not None for slot in self._slots)

    def start(self, job: SlotJob, prompt: PreparedPrompt) -> int:
        """Put `job` into the free slot that suits its prompt best (`_fitness`); returns
        the prompt tokens kept from before (cached tokens). Raises InvalidRequest for a
        grammar llama.cpp cannot use. Whatever it raises, the slot is left free: the caller
        ends the job (once)."""
        from smallfirst.backends.llamacpp_sampling import sampler_for

        sampler = sampler_for(self._engine.llama, job.request, prompt.max_tokens)
        tokens = prompt.tokens
        echo = isinstance(job.request, TextRequest) and job.request.echo
        slot = max((s for s in self._slots if s.job is None), key=lambda s: _fitness(s, tokens))
        slot.job, slot.sampler = job, sampler
        try:
            kept, echoed = self._bring(
                slot, tokens, job.request.logprob_alternatives if echo else None
            )
            self._fill(slot, job, prompt, kept, echoed)
        except BaseException:
            self._release(slot)
            slot.tokens = []  # what its sequence holds is no longer known
            raise
        return kept

    def _fill(
        self,
        slot: _Slot,
        job: SlotJob,
        prompt: PreparedPrompt,
        kept: int,
        echoed: list[TokenLogprob | None],
    ) -> None:
        tokens = prompt.tokens
        echo = isinstance(job.request, TextRequest) and job.request.echo
        slot.tokens = tokens[:kept]
        # The last prompt token is decoded on its own step, as each sampled token is: logits
        # then come from the same kernels whatever the prompt's split (llama.cpp computes a
        # row of a long batch with other matrix kernels, which round differently: seeded
        # sampled answers differed 2 times in 12 between a first and a repeated request).
        slot.pending = tokens[kept:-1]
        slot.next_token = tokens[-1]
        job.answer = self._engine.answer_writer(prompt, job.emit, kept)
        slot.top_logprobs = job.request.logprob_alternatives
        slot.last_used = next(self._uses)
        slot.prompt = tokens
        slot.donor, slot.share_upto = (None, 0) if echo else self._donor_for(slot, tokens, kept)
        slot.donor_job = slot.donor.job if slot.donor is not None else None
        if echo:
            self._start_echo(slot, job, prompt.added_bos, echoed)

    def _bring(
        self, slot: _Slot, tokens: list[int], echo_top: int | None
    ) -> tuple[int, list[TokenLogprob | None]]:
        """Make `slot` hold the longest prefix of `tokens` it may keep; returns its length,
        and the scores to echo for tokens 1 to that length. An echo with logprobs
        (`echo_top` alternatives) keeps only what it has scores for: each token read with
        logits on gives the next one's logprob (bring keeps at most all but the last). It
        reads at least two tokens: llama.cpp multiplies a one-row batch with other kernels,
        and a prompt's last score then differed from a whole read (18 of 100 MMLU answers
        beyond 2e-3, up to 0.22; with two rows, none)."""
        held = slot.tokens
        if echo_top is None:
            kept = self.states.bring(slot.seq, held, tokens)
            slot.scored.keep(min(kept, shared_prefix_length(held, tokens)))
            return kept, [None] * kept
        scored = min(slot.scored.usable(held, tokens, echo_top), len(tokens) - 2)
        kept = self.states.bring(slot.seq, held, tokens[: max(scored, 1)])
        return kept, slot.scored.reuse(kept, echo_top)

    def _start_echo(
        self, slot: _Slot, job: SlotJob, added_bos: bool, held: list[TokenLogprob | None]
    ) -> None:
        """The echo's first token, unless the engine added it (the model's BOS before a text
        prompt): no logits predict it, so its logprob is None (as OpenAI's). Then the tokens
        the slot kept, with the scores an earlier echo gave them."""
        slot.echo = self._engine.prompt_echo(job.emit)
        first = slot.prompt[0]
        if not added_bos:
            unscored = unscored_token(self._engine.token_piece(first))
            slot.echo.add(first, unscored if slot.top_logprobs is not None else None)
        for position, score in enumerate(held, start=1):
            slot.echo.add(slot.prompt[position], score)
        if not slot.pending:
            slot.echo.flush()
            slot.echo = None

    def _donor_for(self, slot: _Slot, prompt: list[int], kept: int) -> tuple[_Slot | None, int]:
        """The busy slot whose sequence holds, or will once it has read its prompt, the
        longest prefix of `prompt`, if that spares `slot` reading MIN_SHARED_TOKENS more than
        the `kept` it holds (the same prompt asked for `n` times; a long system prompt shared
        by requests that arrive together). The prompt's last token is never shared."""
        donor, upto = None, kept + MIN_SHARED_TOKENS - 1
        for other in self._busy_slots():
            if other is slot or other.donor is not None:
                continue
            shared = shared_prefix_length(other.tokens + other.pending, prompt)
            if min(shared, len(prompt) - 1) > upto:
                donor, upto = other, min(shared, len(prompt) - 1)
        return (donor, upto) if donor is not None else (None, 0)

    def _share(self, slot: _Slot) -> None:
        """Copy the donor's prefix into `slot` once the donor holds it. A donor that ended
        its answer still holds its cells until it is given a new prompt; one that was given
        a new prompt, or left before reading that far, is given up: `slot` reads itself."""
        donor = slot.donor
        assert donor is not None
        assert slot.answer is not None
        holds_it = len(donor.tokens) >= slot.share_upto
        if donor.job is slot.donor_job and not holds_it:
            return
        if donor.job is not slot.donor_job and (donor.job is not None or not holds_it):
            slot.donor = slot.donor_job = None
            return
        gained = slot.share_upto - len(slot.tokens)
        self.states.memory.copy(donor.seq, slot.seq, slot.share_upto)
        slot.tokens = slot.prompt[: slot.share_upto]
        slot.pending = slot.prompt[slot.share_upto : -1]
        slot.answer.cached_tokens += gained
        self.states.reused.from_context += gained
        slot.donor = slot.donor_job = None

    def step(self) -> list[SlotJob]:
        """One decode over every busy slot; returns the jobs that ended (answered or
        cancelled)."""
        ended = [self._release(s) for s in self._busy_slots() if s.job and s.job.cancelled.is_set()]
        for slot in self._busy_slots():
            if slot.donor is not None:
                self._share(slot)
        self._fill_batch(self._step_entries())
        batch = self._batch
        if batch.n_tokens == 0:
            return ended
        status = self._low.llama_decode(self._context.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        for slot in self._busy_slots():
            if slot.echo_rows:
                self._echo(slot)
            if slot.logits_at is not None and self._sample(slot, slot.logits_at):
                ended.append(self._release(slot))
        return ended

    def _step_entries(self) -> list[_Entry]:
        """What this step reads: each answering slot's sampled token, then pieces of the
        prompts being read (first come, first read) in the batch's room that is left."""
        entries: list[_Entry] = []
        reading = []
        for slot in self._busy_slots():
            if slot.donor is not None:
                continue  # waits for the prefix its donor is reading
            if slot.pending:
                reading.append(slot)
            elif slot.next_token is not None:
                entries.append(_Entry(slot, [slot.next_token], logits=True))
                slot.next_token = None
        room = max(min(PROMPT_PIECE_TOKENS, self._n_batch - len(entries)), 0)
        for slot in sorted(reading, key=lambda s: s.last_used):
            piece = slot.pending[:room]
            if not piece:
                break
            slot.pending = slot.pending[len(piece) :]
            entries.append(_Entry(slot, piece, logits=False))
            room -= len(piece)
        return entries

    def _fill_batch(self, entries: list[_Entry]) -> None:
        """The batch holds `entries`, longest first. With two or more one-token sequences
        ahead of a longer one in the batch, llama.cpp (0.3.36's build) computed the longer
        one's logits wrong (off by up to 0.6; any other order, or a decode of its own, gave
        the exact values), so the same prompt answered differently beside other answers
        (scratch repro, docs/architecture.md)."""
        self._batch.n_tokens = 0
        for entry in sorted(entries, key=lambda entry: -len(entry.tokens)):
            row = self._add(entry.slot, entry.tokens, logits=entry.logits)
            if entry.logits:
                entry.slot.logits_at = row

    def _echo(self, slot: _Slot) -> None:
        """The prompt tokens this step's rows predict, with their logprobs when asked."""
        assert slot.echo is not None
        for row, position in slot.echo_rows:
            token = slot.prompt[position + 1]
            scored = None
            if slot.top_logprobs is not None:
                scored = self._logprob_at(row, slot.top_logprobs)(token)
                slot.scored.add(position + 1, scored)
            slot.echo.add(token, scored)
        slot.echo_rows = []
        if not slot.pending:  # the last prompt token is now echoed
            slot.echo.flush()
            slot.echo = None

    def clear(self) -> list[SlotJob]:
        """Empty every sequence (after a failed decode, whose cells are unknown); returns
        the jobs that were in the slots."""
        jobs = [self._release(slot) for slot in self._busy_slots()]
        for slot in self._slots:
            self.states.memory.forget(slot.seq)
            slot.tokens = []
            slot.scored.keep(0)
        return jobs

    def _busy_slots(self) -> list[_Slot]:
        return [slot for slot in self._slots if slot.job is not None]

    def _add(self, slot: _Slot, tokens: list[int], *, logits: bool) -> int | None:
        """Append `tokens` of `slot` to the batch; returns the row whose logits are kept."""
        batch = self._batch
        echoing = slot.echo is not None and not logits  # a piece of an echoed prompt
        for token in tokens:
            row = batch.n_tokens
            batch.token[row] = token
            batch.pos[row] = len(slot.tokens)
            batch.n_seq_id[row] = 1
            batch.seq_id[row][0] = slot.seq
            batch.logits[row] = echoing
            if echoing:
                slot.echo_rows.append((row, len(slot.tokens)))
            slot.tokens.append(token)
            batch.n_tokens += 1
        if not logits:
            return None
        batch.logits[batch.n_tokens - 1] = True
        return int(batch.n_tokens - 1)

    def _sample(self, slot: _Slot, row: int) -> bool:
        """Sample the slot's next token from `row`; True when its answer is over."""
        assert slot.answer is not None
        slot.logits_at = None
        if not slot.answer.wants_tokens:  # `max_tokens: 0`: the prompt was only scored
            slot.answer.finish()
            return True
        token = self._low.llama_sampler_sample(slot.sampler.sampler, self._context.ctx, row)
        logprob_of = None
        if slot.top_logprobs is not None:
            logprob_of = self._logprob_at(row, slot.top_logprobs)
        if slot.answer.add(token, logprob_of):
            slot.answer.finish()
            return True
        slot.next_token = token
        return False

    def _logprob_at(self, row: int, top_k: int) -> Callable[[int], TokenLogprob]:
        import numpy as np

        def logprob_of(token: int) -> TokenLogprob:
            pointer = self._low.llama_get_logits_ith(self._context.ctx, row)
            logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float32)
            return token_logprob(logits, token, top_k, self._engine.token_piece)

        return logprob_of

    def _release(self, slot: _Slot) -> SlotJob:
        job = slot.job
        assert job is not None
        if slot.sampler is not None:
            slot.sampler.close()
        slot.job, slot.sampler = None, None
        slot.pending, slot.next_token, slot.logits_at = [], None, None
        slot.donor = slot.donor_job = None
        slot.echo, slot.echo_rows = None, []
        return job


def _fitness(slot: _Slot, prompt: list[int]) -> tuple[int, int]:
    """How well a free slot suits `prompt`: the longest prefix it holds, if that spares at
    least MIN_SHARED_TOKENS, then the least recently used. Prompts share a few tokens of their
    chat template: counted, the slot used last always won, and conversations taking turns
    evicted one another from one slot while the others stayed empty."""
    shared = shared_prefix_length(slot.tokens, prompt)
    return (shared if shared >= MIN_SHARED_TOKENS else 0, -slot.last_used)


def model_kv_bytes_per_token(model: Any) -> int:
    """`kv_bytes_per_token` of a loaded model."""
    from llama_cpp import llama_cpp as low_level

    return kv_bytes_per_token(
        int(low_level.llama_model_n_layer(model)),
        int(low_level.llama_model_n_embd(model)),
        int(low_level.llama_model_n_head(model)),
        int(low_level.llama_model_n_head_kv(model)),
    )
