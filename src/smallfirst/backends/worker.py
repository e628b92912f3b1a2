"""One worker thread per local model with a bounded FIFO queue in front of it.

Used for engines that are not thread-safe (llama.cpp). The event loop never blocks: jobs
run on the worker thread and stream their output back through an asyncio queue. When the
consumer stops reading (client disconnect), a cancel flag is set that the job checks between
tokens, so the worker is free again within one token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from smallfirst.errors import QueueFull
from smallfirst.types import Chunk

T = TypeVar("T")
Emit = Callable[[Chunk], None]
Producer = Callable[[Emit, threading.Event], None]
_DONE = object()


class ModelWorker:
    def __init__(self, name: str, queue_size: int) -> None:
        self.name = name
        self.queue_size = queue_size
        self.busy = threading.Lock()  # held by the worker thread while a job runs
        self.cancelled_jobs = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{name}")
        self._pending = 0  # queued + running; only touched on the event loop thread

    def queue_depth(self) -> int:
        return max(self._pending - 1, 0)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self, job: Callable[[], T]) -> T:
        """Run `job` on the worker, FIFO behind the others; QueueFull (429) when full."""
        if self._pending > self.queue_size:
            raise QueueFull(
                f"model {self.name!r} is busy: {self.queue_depth()} requests are waiting "
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

    async def stream(self, produce: Producer) -> AsyncIterator[Chunk]:
        """Run `produce(emit, cancelled)` on the worker and yield what it emits."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def job() -> None:
            try:
                if not cancelled.is_set():
                    produce(emit, cancelled)
                if cancelled.is_set():
                    self.cancelled_jobs += 1
            except BaseException as exc:  # handed to the consumer and re-raised there
                emit(exc)
            finally:
                emit(_DONE)

        runner = asyncio.ensure_future(self.run(job))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Chunk)
                yield item
            await runner
        finally:
            cancelled.set()  # no-op after a normal finish; stops the job on disconnect
            if not runner.done():
                runner.cancel()
