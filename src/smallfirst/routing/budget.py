"""Daily spend, global and per API key; when a budget is spent, requests stay local.

A remote call's cost is known only when it ends, so while it is under way its estimate is
held as spent (`hold`, `release`): requests arriving meanwhile see it, and a budget is
overshot by at most the calls that began before it was reached (all of them did, when only
finished calls counted: 10 concurrent requests spent 10 times a budget one paid for).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from smallfirst.config import BudgetConfig

DAY_S = 86_400


def utc_day(timestamp: float) -> int:
    return int(timestamp // DAY_S)


@dataclass(frozen=True)
class Hold:
    """An estimate held as spent while its call is under way."""

    usd: float
    key: str | None


class SpendTracker:
    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self._day = utc_day(time.time())
        self._total = 0.0
        self._per_key: defaultdict[str, float] = defaultdict(float)
        self._held = 0.0  # not reset with the day: the calls under way still end
        self._held_per_key: defaultdict[str, float] = defaultdict(float)
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

    def hold(self, usd: float, key: str | None) -> Hold:
        with self._lock:
            self._held += usd
            if key is not None:
                self._held_per_key[key] += usd
        return Hold(usd, key)

    def release(self, hold: Hold) -> None:
        with self._lock:
            self._held -= hold.usd
            if hold.key is not None:
                self._held_per_key[hold.key] -= hold.usd

    def exhausted(self, key: str | None, now: float | None = None) -> str | None:
        """Why remote tiers are off limits now, or None. Held estimates count as spent."""
        with self._lock:
            self._roll(now)
            daily = self.config.daily_usd
            if daily is not None and self._total + self._held >= daily:
                return f"daily budget ${daily:g} spent"
            per_key = self.config.per_key_daily_usd
            if per_key is not None and key is not None and self._spent_by(key) >= per_key:
                return f"daily budget ${per_key:g} for this API key spent"
            return None

    def _spent_by(self, key: str) -> float:
        return self._per_key[key] + self._held_per_key[key]

    def _roll(self, now: float | None) -> None:
        day = utc_day(time.time() if now is None else now)
        if day != self._day:
            self._day, self._total = day, 0.0
            self._per_key.clear()
