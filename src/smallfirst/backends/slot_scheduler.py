"""Admits requests into a local model's running batch of sequences (its `parallel` slots).

Requests wait in a FIFO and join at the next decode step as slots free up, or are refused
(429) once they have waited `queue_timeout_s` for one (the model's load aside). The decode loop
runs as one job on the model's worker thread (so the engine is never unloaded under it) for as
long as there is work, and ends when the last answer does; the next request starts it again.
Chunks travel back to the event loop through the worker's `Outbox`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from smallfirst.backends.llamacpp_slots import Places, SlotJob
from smallfirst.backends.worker import DONE, ModelWorker, Outbox, received
from smallfirst.completions import Chunk
from smallfirst.errors import ModelUnavailable, QueueFull
from smallfirst.types import GenerateRequest
from smallfirst.usage_so_far import counting

if TYPE_CHECKING:
    from smallfirst.backends.llamacpp_engine import LlamaEngine
    from smallfirst.backends.llamacpp_slots import SlotDecoder

log = logging.getLogger("smallfirst.backends")
# A refused request is told to come back when the answers ahead of it should have ended:
# recent answers' mean time in a slot (moving average, weight of the newest) times the queue's
# turns. `retry-after: 1` had the openai SDK's two retries spent before a slot freed up.
ANSWER_TIME_WEIGHT = 0.2
MAX_RETRY_AFTER_S = 60  # the openai SDK waits at most this long for a retry-after


class SlotScheduler:
    def __init__(
        self,
        worker: ModelWorker,
        parallel: int,
        queue_size: int,
        on_idle: Callable[[], None] = lambda: None,
        queue_timeout_s: float = math.inf,
    ) -> None:
        """`on_idle` runs on the event loop when the last answer has ended and the worker
        is free again."""
        self._worker = worker
        self._on_idle = on_idle
        self._capacity = parallel + queue_size  # answering plus waiting
        self._timeout_s = queue_timeout_s
        self.parallel = parallel
        self._lock = threading.Lock()
        self._waiting: deque[SlotJob] = deque()
        self._open = 0  # submitted and not ended: waiting or in a slot
        self._jobs: set[SlotJob] = set()  # the same jobs, to end them all at shutdown
        self._reserved: set[Places] = set()  # places held for requests of n answers
        self._looping = False
        self._loop_task: asyncio.Future[None] | None = None
        self.started_jobs = 0  # these two are written by the worker thread only
        self.waited_s = 0.0
        self.cancelled_jobs = 0  # under the lock
        self._answer_s: float | None = None  # recent answers' time in a slot (under the lock)

    def queue_depth(self) -> int:
        return max(self._open - self.parallel, 0)

    def busy_slots(self) -> int:
        with self._lock:
            return self._open - len(self._waiting)

    @contextmanager
    def reserve(self, count: int) -> Iterator[Places]:
        """Hold up to `count` places for one request's answers (`stream(..., places)`), as
        many as are free, or refuse it now (429) when none is, as any request: refused
        half-way, the answers already made were wasted. Refused unless `count` were free, it
        was refused again and again while requests for one answer took every place freed."""
        with self._lock:
            free = self._capacity - self._open - self._held()
            if free < 1:
                raise self._full()
            places = Places(min(count, free))
            self._reserved.add(places)
        try:
            yield places
        finally:
            with self._lock:
                self._reserved.discard(places)

    def _held(self) -> int:
        """Reserved places no answer of their request uses now (under the lock)."""
        return sum(places.count - places.in_use for places in self._reserved)

    def _full(self) -> QueueFull:
        """The 429 for a request the slots and queue have no place for (under the lock)."""
        return self._refused(
            f"model {self._worker.name!r} is busy: {self.queue_depth()} answers are "
            f"waiting for one of its {self.parallel} slots (a request for `n` answers "
            "counts n); retry later"
        )

    def _waited_too_long(self) -> QueueFull:
        """The 429 for a request no slot took within `queue_timeout_s` (under the lock)."""
        return self._refused(
            f"model {self._worker.name!r} is busy: all {self.parallel} of its slots stayed in "
            f"use for the {self._timeout_s:g} s this request could wait (queue_timeout_s); "
            "retry later"
        )

    def _refused(self, message: str) -> QueueFull:
        error = QueueFull(message)
        if self._answer_s is not None:
            turns = math.ceil(self._open / self.parallel)  # the slots' rounds ahead of it
            wait = math.ceil(turns * self._answer_s)
            error.retry_after_s = min(max(wait, QueueFull.retry_after_s), MAX_RETRY_AFTER_S)
        return error

    async def stream(
        self,
        request: GenerateRequest,
        engine: Callable[[], LlamaEngine],
        places: Places | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Answer `request` in a slot of `engine()` (loaded on the worker thread), in one of
        the `places` reserved for it if given."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        outbox = Outbox(asyncio.get_running_loop(), queue, self._worker.stream_interval_s)
        job = SlotJob(request, outbox.put, threading.Event(), time.monotonic(), places)
        call = counting.get()
        if call is not None:
            call.add(job.usage)
        with self._lock:
            if places is not None and places.in_use < places.count:
                places.in_use += 1
            elif self._open + self._held() >= self._capacity:
                raise self._full()
            else:
                job.places = None  # beyond its reservation: it came in as any request
            self._open += 1
            self._jobs.add(job)
            self._waiting.append(job)
            start, self._looping = not self._looping, True
        if start:
            loop = self._worker.run(lambda: self._loop(engine), bounded=False)
            self._loop_task = asyncio.ensure_future(loop)
            self._loop_task.add_done_callback(self._loop_ended)
        try:
            async for chunk in received(queue):
                yield chunk
        finally:
            job.cancelled.set()  # no-op after the end; frees the slot on a disconnect
            self._leave_queue(job)

    def _leave_queue(self, job: SlotJob) -> None:
        """A job whose client left while it waited gives its place up now, not when a slot
        would have admitted it: dead places made new requests 429 for minutes."""
        with self._lock:
            if job not in self._waiting:
                return
            self._waiting.remove(job)
            self._left(job)
            self.cancelled_jobs += 1

    def end_all(self, error: BaseException) -> None:
        """End every answer under way or waiting with `error` (the server is shutting down):
        its client hears why at once, and the decode loop lets its slot go at the next step."""
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.emit(error)
            job.cancelled.set()

    def _loop(self, engine: Callable[[], LlamaEngine]) -> None:
        """Decode until no request waits or answers (worker thread)."""
        try:
            model = engine()
        except Exception as exc:  # the model cannot load: whoever waits hears why
            with self._lock:
                waiting = list(self._waiting)
                self._waiting.clear()
                self._looping = False
            for job in waiting:
                self._fail(job, exc)
            return
        slots = model.slots
        loaded = time.monotonic()  # waiting for the model to load is not waiting for a slot
        while True:
            with self._lock:
                joining = min(len(self._waiting), slots.free_slots)
                admitted = [self._waiting.popleft() for _ in range(joining)]
                for job in admitted:
                    if job.places is not None:
                        job.places.begun = True
                if not admitted and not slots.busy:
                    self._looping = False
                    return
                expired = self._expired(loaded)
                refusals = [self._waited_too_long() for _ in expired]
            for job, refusal in zip(expired, refusals, strict=True):
                self._fail(job, refusal)
            for job in admitted:
                self._admit(slots, model, job)
            try:
                ended = slots.step()
            except Exception as exc:
                log.exception("decoding in slots failed; the answers under way end with it")
                for job in slots.clear():
                    self._fail(job, exc)
                continue
            for job in ended:
                self._end(job)

    def _expired(self, loaded: float) -> list[SlotJob]:
        """The waiting jobs whose `queue_timeout_s` for a slot has run out since the model
        was ready, oldest first, but for answers of a request another answer of which has
        had a slot (under the lock)."""
        too_early = time.monotonic() - self._timeout_s
        expired = []
        for job in self._waiting:
            if max(job.submitted, loaded) > too_early:
                break  # the others came later
            if job.places is None or not job.places.begun:
                expired.append(job)
        for job in expired:
            self._waiting.remove(job)
        return expired

    def _loop_ended(self, task: asyncio.Future[None]) -> None:
        """After a decode loop: the model is idle (`on_idle`), or the loop never ran (the
        worker was full or shut down) and left its jobs waiting: end them with its error."""
        if not task.cancelled() and task.exception() is None:
            self._on_idle()
            return
        error = task.exception() if not task.cancelled() else None
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
            self._looping = False
        for job in waiting:
            self._fail(job, error or ModelUnavailable(f"model {self._worker.name!r} shut down"))

    def _admit(self, slots: SlotDecoder, model: LlamaEngine, job: SlotJob) -> None:
        job.admitted = time.monotonic()
        self.started_jobs += 1
        self.waited_s += job.admitted - job.submitted
        if job.cancelled.is_set():
            self._end(job)
            return
        try:
            slots.start(job, model.prepare(job.request))
        except Exception as exc:  # the request's own error (context length, grammar)
            self._fail(job, exc)

    def _fail(self, job: SlotJob, error: BaseException) -> None:
        self._end(job, error)

    def _end(self, job: SlotJob, error: BaseException | None = None) -> None:
        # Read before DONE goes out: the client's stream marks every job it leaves as
        # cancelled, so read after, an answer that ended well could count as cancelled. The
        # place is given back before the end (or `error`) goes out too: the next of `n`
        # answers starts on it at once, and a client refused a slot that asks again at once
        # does not find its own place still taken.
        cancelled = job.cancelled.is_set()
        with self._lock:
            self.cancelled_jobs += cancelled
            self._left(job)
            if job.admitted is not None and not cancelled:
                self._answered_in(time.monotonic() - job.admitted)
        if error is not None:
            job.emit(error)
        job.emit(DONE)

    def _answered_in(self, seconds: float) -> None:
        previous = seconds if self._answer_s is None else self._answer_s
        self._answer_s = previous + ANSWER_TIME_WEIGHT * (seconds - previous)

    def _left(self, job: SlotJob) -> None:
        """`job` gives up its place (under the lock): back to its reservation if it had one."""
        self._open -= 1
        self._jobs.discard(job)
        if job.places is not None:
            job.places.in_use -= 1
