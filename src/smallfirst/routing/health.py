"""Skip a model that keeps failing, for a while (a circuit breaker per model).

Without it, every request whose plan starts with a dead upstream pays that upstream's
retries and timeouts before the fallback answers, on every request while the network is
down: 1.6-1.7 s measured for a refused connection, and ~16.5 s (computed from the default
timeouts and retries) for a host that does not answer. See docs/routing.md.
After `failures` failures in a row a model is skipped for `cooldown_s`; then requests may
try it again: a success closes the breaker, a failure opens it for twice as long (up to
`max_cooldown_s`). A success while it is open (a long stream that began before) changes
nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from smallfirst.config import CircuitBreakerConfig


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0
    cooldown_s: float = 0.0
    last_error: str = ""


class ModelHealth:
    """Thread-safe; one per gateway."""

    def __init__(
        self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._lock = threading.Lock()

    def cooling_down_s(self, model_id: str) -> float:
        """Seconds until `model_id` may be tried again; 0 if it may be tried now."""
        with self._lock:
            breaker = self._breakers.get(model_id)
            return max(breaker.open_until - self._clock(), 0.0) if breaker else 0.0

    def succeeded(self, model_id: str) -> None:
        """Close the breaker, unless it is open: no request is sent to the model then, so
        the success is of one that began before it opened (a long stream)."""
        with self._lock:
            breaker = self._breakers.get(model_id)
            if breaker is None or breaker.open_until > self._clock():
                return
            del self._breakers[model_id]

    def failed(self, model_id: str, reason: str, retry_after_s: float | None = None) -> None:
        """A failure of `model_id`. An upstream that said when to come back (`retry-after`
        on a 429 or 503) is skipped no longer than that: a gateway behind this one, its
        queue full for a few seconds, was skipped for 30."""
        if self.config.failures == 0:
            return
        with self._lock:
            breaker = self._breakers.setdefault(model_id, _Breaker())
            breaker.failures += 1
            breaker.last_error = reason
            now = self._clock()
            # Requests that were under way when it opened fail too: they do not extend it.
            if breaker.failures < self.config.failures or breaker.open_until > now:
                return
            if breaker.cooldown_s:
                breaker.cooldown_s = min(breaker.cooldown_s * 2, self.config.max_cooldown_s)
            else:
                breaker.cooldown_s = self.config.cooldown_s
            wait = breaker.cooldown_s if retry_after_s is None else retry_after_s
            breaker.open_until = now + min(breaker.cooldown_s, wait)

    def describe(self, model_id: str) -> str:
        """Why `model_id` is skipped, for route reasons and error messages."""
        with self._lock:
            breaker = self._breakers.get(model_id)
            if breaker is None:
                return f"{model_id} is available"
            wait = math.ceil(max(breaker.open_until - self._clock(), 0.0))
            return (
                f"{model_id} skipped for {wait} s more after {breaker.failures} failures in a "
                f"row (last: {breaker.last_error})"
            )

    def snapshot(self) -> dict[str, float]:
        """model id -> seconds of cooldown left, for the models that are skipped now."""
        with self._lock:
            now = self._clock()
            return {
                model_id: breaker.open_until - now
                for model_id, breaker in self._breakers.items()
                if breaker.open_until > now
            }
