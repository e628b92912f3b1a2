"""One worker thread per local model, and the hand-off of chunks from it to the event loop.

Used for engines that are not thread-safe (llama.cpp): loading, warming up and the slots'
decode loop (`slot_scheduler.py`) run as jobs on the model's one thread, FIFO, so that the
event loop never blocks and a model is never unloaded while a job uses it (`busy`).

Chunks cross from the worker thread to the loop through an `Outbox`. With a stream interval,
the tokens an answer emits within it travel as one chunk: one loop wake-up, one SSE event, one
socket write and one client wake-up per interval instead of per token. Every wake-up on a
2-core machine takes a core from llama.cpp's compute threads, which then wait for each other.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeGuard, TypeVar

from smallfirst.completions import Chunk
from smallfirst.errors import QueueFull

T = TypeVar("T")
DONE = object()  # the last item a job hands to its consumer


class ModelWorker:
    def __init__(self, name: str, queue_size: int, stream_interval_s: float = 0.0) -> None:
        self.name = name
        self.queue_size = queue_size
        self.stream_interval_s = stream_interval_s
        self.busy = threading.Lock()  # held by the worker thread while a job runs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{name}")
        self._pending = 0  # queued + running; only touched on the event loop thread

    def queue_depth(self) -> int:
        return max(self._pending - 1, 0)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self, job: Callable[[], T], *, bounded: bool = True) -> T:
        """Run `job` on the worker, FIFO behind the others; QueueFull (429) when full.
        `bounded=False`: the caller admits its own work (the slots' decode loop, whose
        answers `SlotScheduler` has let in; the loop just ending still counts here until
        its future resolves on the event loop)."""
        if bounded and self._pending > self.queue_size:
            raise QueueFull(
                f"model {self.name!r} is busy: {self.queue_depth()} jobs are waiting "
                f"(queue_size={self.queue_size}); retry later"
            )
        self._pending += 1

        def locked() -> T:
            with self.busy:
                return job()

        try:
            return await asyncio.wrap_future(self._executor.submit(locked))
        finally:
            self._pending -= 1


async def received(queue: asyncio.Queue[object]) -> AsyncGenerator[Chunk, None]:
    """The chunks a job put in `queue` until DONE; an error it put there is raised."""
    while True:
        item = await queue.get()
        if item is DONE:
            return
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Chunk)
        yield item


class Outbox:
    """Hands items from the worker thread to an asyncio queue, at most one wake-up of the
    loop per `interval_s`; text chunks that wait together are merged into one."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object], interval_s: float
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._items: list[object] = []
        self._scheduled = False
        self._last_delivery = -math.inf

    def put(self, item: object) -> None:
        """Called on the worker thread."""
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
            wait = self._last_delivery + self._interval_s - time.monotonic()
        # The first token, the end and errors go at once; others at most `interval_s` late.
        if wait <= 0 or not _is_text(item):
            self._loop.call_soon_threadsafe(self._deliver)
        else:
            self._loop.call_soon_threadsafe(self._loop.call_later, wait, self._deliver)

    def _deliver(self) -> None:
        """Runs on the event loop."""
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
            self._last_delivery = time.monotonic()
        for item in _merge_text(items):
            self._queue.put_nowait(item)


def _is_text(item: object) -> TypeGuard[Chunk]:
    return isinstance(item, Chunk) and item.finish_reason is None and item.usage is None


def _merge_text(items: list[object]) -> list[object]:
    merged: list[object] = []
    for item in items:
        last = merged[-1] if merged else None
        if _is_text(item) and _is_text(last):
            logprobs = None
            if last.logprobs is not None or item.logprobs is not None:
                logprobs = (last.logprobs or []) + (item.logprobs or [])
            merged[-1] = Chunk(text=last.text + item.text, logprobs=logprobs)
        else:
            merged.append(item)
    return merged
