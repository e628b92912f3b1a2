"""Daily spend, global and per API key; when a budget is spent, requests stay local."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from smallfirst.config import BudgetConfig

DAY_S = 86_400


def utc_day(timestamp: float) -> int:
    return int(timestamp // DAY_S)


class SpendTracker:
    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self._day = utc_day(time.time())
        self._total = 0.0
        self._per_key: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def seed(self, total: float, per_key: dict[str, float]) -> None:
        """Start from what today's request log already holds (restart-safe budgets)."""
        with self._lock:
            self._total = total
            self._per_key.update(per_key)

    def add(self, cost: float, key: str | None, now: float | None = None) -> None:
        with self._lock:
            self._roll(now)
            self._total += cost
            if key is not None:
                self._per_key[key] += cost

    def exhausted(self, key: str | None, now: float | None = None) -> str | None:
        """Why remote tiers are off limits now, or None."""
        with self._lock:
            self._roll(now)
            daily = self.config.daily_usd
            if daily is not None and self._total >= daily:
                return f"daily budget ${daily:g} spent"
            per_key = self.config.per_key_daily_usd
            if per_key is not None and key is not None and self._per_key[key] >= per_key:
                return f"daily budget ${per_key:g} for this API key spent"
            return None

    def _roll(self, now: float | None) -> None:
        day = utc_day(time.time() if now is None else now)
        if day != self._day:
            self._day, self._total = day, 0.0
            self._per_key.clear()
