"""A remote model's `max_concurrency` connections as places its calls take in turn.

aiohttp's pool queues calls for a connection too, but with no bound on the wait (its
`sock_connect` timeout starts once a connection is being made) and no way to end the wait at
shutdown: behind two long streams a call waited as long as they ran, and at shutdown the calls
still waiting were cut with a plain-text 500. Here a call waits at most `timeout_s`, first
come first served, and is then refused with a 429 `queue_full`, as a local model's full queue
refuses it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from smallfirst.errors import QueueFull


class ConnectionPlaces:
    def __init__(self, model_id: str, count: int, timeout_s: float) -> None:
        self._model_id = model_id
        self._count = count
        self._timeout_s = timeout_s
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def waiting(self) -> int:
        return len(self._waiters)

    async def take(self) -> None:
        """Hold a place until `give_back`; QueueFull when none frees up within the timeout."""
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout_s):
                await waiter
        except BaseException as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back()  # handed a place just as the wait ended: the next one's
            if isinstance(exc, TimeoutError):
                raise self._full() from None
            raise

    def give_back(self) -> None:
        """A call's connection is free: the longest waiting call gets it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def end_waits(self, error: BaseException) -> None:
        """The calls waiting end with `error` (the server is shutting down)."""
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _full(self) -> QueueFull:
        return QueueFull(
            f"model {self._model_id!r} is busy: all {self._count} of its connections "
            f"(max_concurrency) stayed in use for the {self._timeout_s:g} s this request "
            "could wait (queue_timeout_s); retry later"
        )
