"""In-process GGUF models on llama.cpp: a worker thread per model (see `worker.py`), lazy
loading, and least-recently-used unloading under a memory budget."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from functools import partial

from smallfirst.backends import local_tools
from smallfirst.backends.base import Backend, PromptReuse, info_from_config
from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.backends.llamacpp_slots import Places
from smallfirst.backends.llamacpp_state import ReuseCounts
from smallfirst.backends.slot_scheduler import SlotScheduler
from smallfirst.backends.worker import ModelWorker
from smallfirst.choices import fan_out
from smallfirst.completions import (
    Chunk,
    Completion,
    ModelInfo,
    ToolCallDelta,
    completion_from_chunks,
)
from smallfirst.config import LlamaCppModel
from smallfirst.errors import ModelUnavailable
from smallfirst.streams import close_stream
from smallfirst.types import ChatRequest, GenerateRequest

log = logging.getLogger("smallfirst.backends")
MB = 1024 * 1024


class LocalModelPool:
    """Keeps loaded models within a memory budget by unloading the least recently used idle one."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._members: list[LlamaCppBackend] = []
        self._lock = threading.Lock()

    def join(self, backend: LlamaCppBackend) -> None:
        self._members.append(backend)

    def make_room(self, needed: int, loading: LlamaCppBackend | None = None) -> None:
        """Unload idle models, least recently used first, until `needed` more bytes fit
        beside the loaded ones (`loading` aside); a busy model stays."""
        with self._lock:
            loaded = self._loaded_besides(loading)
            used = sum(m.loaded_bytes for m in loaded)
            for victim in sorted(loaded, key=lambda m: m.last_used):
                if used + needed <= self.budget_bytes:
                    break
                if victim.try_unload():
                    used -= victim.loaded_bytes_before_unload

    def has_room(self, needed: int, loading: LlamaCppBackend) -> bool:
        """Whether `needed` more bytes fit beside the loaded models (`loading` aside) without
        unloading any."""
        with self._lock:
            used = sum(m.loaded_bytes for m in self._loaded_besides(loading))
            return used + needed <= self.budget_bytes

    def _loaded_besides(self, loading: LlamaCppBackend | None) -> list[LlamaCppBackend]:
        return [m for m in self._members if m.engine_loaded and m is not loading]


class LlamaCppBackend(Backend):
    def __init__(self, config: LlamaCppModel, pool: LocalModelPool) -> None:
        self.config = config
        self.worker = ModelWorker(
            config.id, config.queue_size, stream_interval_s=config.stream_interval_ms / 1000
        )
        self.slots = SlotScheduler(
            self.worker,
            config.parallel,
            config.queue_size,
            on_idle=self._became_idle,
            queue_timeout_s=config.queue_timeout_s,
        )
        self._pool = pool
        self._engine: LlamaEngine | None = None
        self._reused = ReuseCounts()  # outlives an unloaded engine: /metrics counts only grow
        self.last_used = 0.0
        self.loaded_bytes_before_unload = 0
        self.load_count = 0
        self.unload_count = 0  # to make room in the memory budget
        self._tokenizing = threading.Lock()  # guards `_tokenizers_running` and unloading
        self._tokenizers_running = 0  # `tokenizer()` blocks under way: they keep it loaded
        pool.join(self)

    def info(self) -> ModelInfo:
        return info_from_config(self.config, loaded=self._engine is not None)

    @property
    def engine_loaded(self) -> bool:
        return self._engine is not None

    @property
    def loaded_bytes(self) -> int:
        """The weights, the slots' key-value cells and the saved prompt states."""
        engine = self._engine
        return engine.file_size + engine.slots.kv_bytes + engine.saved_bytes if engine else 0

    def queue_depth(self) -> int:
        return self.slots.queue_depth()

    def cancelled_generations(self) -> int:
        return self.slots.cancelled_jobs

    def slots_in_use(self) -> tuple[int, int]:
        return self.slots.busy_slots(), self.slots.parallel

    def queue_wait(self) -> tuple[int, float]:
        return self.slots.started_jobs, self.slots.waited_s

    def loads(self) -> tuple[int, int]:
        return self.load_count, self.unload_count

    def prompt_reuse(self) -> PromptReuse:
        engine = self._engine  # read once: another model's worker may unload it meanwhile
        return PromptReuse(
            from_context=self._reused.from_context,
            from_saved=self._reused.from_saved,
            saved_bytes=engine.saved_bytes if engine else 0,
        )

    async def preload(self) -> bool:
        """Load ahead of the first request (`preload` in the config), but only if the model
        fits in the memory budget beside the models already loaded: a preload never unloads
        another model. False if it did not load."""
        if not self.config.preload:
            return False
        return await self.worker.run(self._load_if_it_fits)

    def _load_if_it_fits(self) -> bool:
        if self._engine is not None:
            return True
        if not self._pool.has_room(self._file_bytes(), self):
            return False
        self._load()
        if self._pool.has_room(self.loaded_bytes, self):
            return True
        self._unload()  # the key-value cells did not fit: the first request will make room
        return False

    def _ensure_engine(self) -> LlamaEngine:
        """Load on first use (worker thread), making room in the pool first: for the file,
        then, once the context is allocated, for all of it."""
        engine = self._engine
        if engine is None:
            self._pool.make_room(self._file_bytes(), self)
            engine = self._load()
            self._pool.make_room(self.loaded_bytes, self)
        self.last_used = time.monotonic()
        return engine

    def _file_bytes(self) -> int:
        """What loading needs at least, known before loading: the GGUF file's size."""
        return resolve_model_path(self.config.path).stat().st_size

    def _load(self) -> LlamaEngine:
        if self._engine is None:
            self._engine = LlamaEngine(
                resolve_model_path(self.config.path),
                n_ctx=self.config.context_length,
                n_threads=self.config.threads,
                n_batch=self.config.batch_size,
                lora_path=self.config.lora_path,
                flash_attn=self.config.flash_attn,
                prompt_cache_bytes=self.config.prompt_cache_mb * 1024 * 1024,
                reused=self._reused,
                parallel=self.config.parallel,
            )
            log.info(
                "loaded %s: %d slot(s) of %d tokens, %d MB of weights and %d MB of key-value cells",
                self.config.id,
                self.config.parallel,
                self.config.context_length,
                self._engine.file_size // MB,
                self._engine.slots.kv_bytes // MB,
            )
            self.load_count += 1
        return self._engine

    def _became_idle(self) -> None:
        """A model loaded while another was busy may have left the pool over budget: now
        that this one is idle, unload idle models until it fits (this one last: it was
        used last). Runs after the worker is released, so that two models ending together
        do not each find the other still busy."""
        self.last_used = time.monotonic()
        self._pool.make_room(0)

    def try_unload(self) -> bool:
        """Unload to make room in the memory budget if idle (called from another model's
        worker); False if busy answering or tokenizing."""
        if not self._unload_if_idle():
            return False
        self.unload_count += 1
        log.info(
            "unloaded %s to make room within local.memory_budget_mb (%d MB freed)",
            self.config.id,
            self.loaded_bytes_before_unload // MB,
        )
        return True

    def _unload_if_idle(self) -> bool:
        if not self.worker.busy.acquire(blocking=False):
            return False
        try:
            with self._tokenizing:
                if self._tokenizers_running:
                    return False
                self._unload()
                return True
        finally:
            self.worker.busy.release()

    def _unload(self) -> None:
        if self._engine is not None:
            self.loaded_bytes_before_unload = self.loaded_bytes
            self._engine.close()
            self._engine = None

    def end_answers(self, error: BaseException) -> None:
        self.slots.end_all(error)

    async def aclose(self) -> None:
        self.slots.end_all(ModelUnavailable(f"model {self.info().id!r} was closed"))
        self.worker.shutdown()
        self._unload_if_idle()

    async def warm_up(self) -> None:
        await self.worker.run(self._ensure_engine)

    @asynccontextmanager
    async def token_counter(self) -> AsyncIterator[Callable[[str], int]]:
        async with self.tokenizer() as tokenizer:
            yield tokenizer.count_tokens

    async def check_context(self, request: GenerateRequest) -> bool:
        """The engine's own check (chat template and tokenizer), off the worker as counting is."""
        async with self.tokenizer() as engine:
            await asyncio.to_thread(engine.prepare, request)
        return True

    @asynccontextmanager
    async def tokenizer(self) -> AsyncIterator[LlamaEngine]:
        """The loaded model as its tokenizer, kept loaded until the block ends: it runs beside
        answers, off the worker, and freed under it the process aborted. Held for the whole
        block, not each call: another model's load unloaded it between a RAG request's counts
        or before a token-id prompt was read, and the request was a 503."""
        engine = await self._pinned_engine()
        try:
            yield engine
        finally:
            with self._tokenizing:
                self._tokenizers_running -= 1

    async def _pinned_engine(self) -> LlamaEngine:
        # Tokenizing reads only the vocabulary, so a loaded model's tokenizer does not wait
        # for the worker; one unloaded before it is counted in is loaded again.
        while True:
            engine = self._engine
            if engine is None:
                engine = await self.worker.run(self._ensure_engine)
            with self._tokenizing:
                if self._engine is engine:
                    self._tokenizers_running += 1
                    return engine

    async def complete(self, request: GenerateRequest) -> Completion:
        chunks = [chunk async for chunk in self.stream(request)]
        return completion_from_chunks(
            chunks, with_logprobs=request.logprob_alternatives is not None
        )

    def answers(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._stream(request) if request.n == 1 else self._side_by_side(request)

    async def _side_by_side(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """`n` answers decoded side by side, as many at once as there are slots (and places
        free), in places reserved for them from the start: the request is refused at once, or
        not at all."""
        with self.slots.reserve(min(request.n, self.config.parallel)) as places:
            answers = fan_out(partial(self._stream, places=places), request, places.count)
            try:
                async for chunk in answers:
                    yield chunk
            finally:
                await close_stream(answers)

    def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._stream(request)

    async def _stream(
        self, request: GenerateRequest, places: Places | None = None
    ) -> AsyncIterator[Chunk]:
        answer = self.slots.stream(request, self._ensure_engine, places)
        async with aclosing(answer) as chunks:
            if isinstance(request, ChatRequest) and local_tools.offered_tools(request):
                async for chunk in _calls_or_prose(request, chunks):
                    yield chunk
                return
            async for chunk in chunks:
                yield chunk


async def _calls_or_prose(
    request: ChatRequest, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[Chunk]:
    """Under the tool grammar an answer begins as a call (`local_tools.CALL_STARTS`) only
    when it is one (or several). Pieces are held until its beginning tells: prose then streams
    as usual; calls stream as OpenAI streams them (`local_tools.StreamedCalls`) once the answer
    is sure to be calls, a cut-off one included; an answer still undecided at its end is
    decided whole (`local_tools.as_tool_call`)."""
    calls = local_tools.StreamedCalls(request)
    held: list[Chunk] = []
    # The held answer's beginning as far as it tells (not the whole held text joined again
    # at each piece: an answer all whitespace, or JSON but no call, is held to its end).
    begun = ""
    sending_calls = False  # once sure, for good: what was sent cannot be taken back
    async for chunk in chunks:
        calls.feed(chunk.text)
        sending_calls = sending_calls or calls.are_calls
        if sending_calls:
            held = []
            for delta in calls.deltas():
                yield Chunk(tool_calls=[delta])
            if chunk.finish_reason is not None:
                finish = "tool_calls" if calls.whole else chunk.finish_reason
                yield Chunk(finish_reason=finish, usage=chunk.usage)
            continue
        held.append(chunk)
        begun = (begun + chunk.text).lstrip()[: local_tools.TELLING_CHARS]
        if begun and not local_tools.may_be_a_call(begun):
            for piece in held:
                yield piece
            async for rest in chunks:
                yield rest
            return
    if not sending_calls:
        for piece in _as_tool_call_chunks(request, held):
            yield piece


def _as_tool_call_chunks(request: ChatRequest, chunks: list[Chunk]) -> list[Chunk]:
    """The held answer again: as its tool calls (id and name, then the arguments, a piece
    each), then the finish, if it is a call or several; unchanged if it is not."""
    held = completion_from_chunks(chunks, with_logprobs=False)
    answer = local_tools.as_tool_call(request, held)
    if answer.tool_calls is None and answer.text == held.text:
        return chunks
    pieces = []
    for index, call in enumerate(answer.tool_calls or []):
        pieces.append(ToolCallDelta(index=index, id=call.id, name=call.function.name))
        if call.function.arguments:
            pieces.append(ToolCallDelta(index=index, arguments=call.function.arguments))
    return [
        *(Chunk(tool_calls=[piece]) for piece in pieces),
        Chunk(text=answer.text, finish_reason=answer.finish_reason, usage=answer.usage),
    ]
