"""Daily spend, global and per API key; when a budget is spent, requests stay local.

A remote call's cost is known only when it ends, so while it is under way its estimate is
held as spent (`hold`, `release`): requests arriving meanwhile see it, and a budget is
overshot by at most the calls that began before it was reached (all of them did, when only
finished calls counted: 10 concurrent requests spent 10 times a budget one paid for).

Requests made without an API key (keys not required, or not sent) share one per-key budget:
a client with a key spent its own and went on spending without it, and a gateway without keys
had no per-key limit at all.

Gateways sharing a data dir share its budgets: what the others spent today comes from the
request log (`others_spent`, read off the event loop by `logs/spend.py`). Their calls under
way are held in their memory, not here, so N processes overshoot by at most the calls each
had under way when the budget was reached, plus what the others finished in the last ~0.1 s
(the log's write and read intervals). Two gateways, $0.05 a day, 8 clients: $0.104 spent
when each counted only its own spend, $0.061-0.064 now.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from smallfirst.config import BudgetConfig
from smallfirst.logs.spend import KEYLESS, utc_day


@dataclass(frozen=True)
class Hold:
    """An estimate held as spent while its call is under way."""

    usd: float
    key: str  # its per-key bucket (`KEYLESS`: no key)


class SpendTracker:
    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self._day = utc_day()
        self._total = 0.0  # this process's spend today
        self._per_key: defaultdict[str, float] = defaultdict(float)
        self._others = 0.0  # today's spend by other processes on the request log
        self._others_per_key: dict[str, float] = {}
        self._held = 0.0  # not reset with the day: the calls under way still end
        self._held_per_key: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @property
    def budgeted(self) -> bool:
        return self.config.limited

    def others_spent(self, day: int, total: float, per_key: dict[str, float]) -> None:
        """What the other processes on the request log (and this one's earlier runs) spent on
        UTC `day`, as last read from it."""
        with self._lock:
            if day > self._day:
                self._roll_to(day)
            if day == self._day:  # else read before midnight, told after: yesterday's
                self._others, self._others_per_key = total, per_key

    def add(self, cost: float, key: str | None, now: float | None = None) -> None:
        with self._lock:
            self._roll(now)
            self._total += cost
            self._per_key[_bucket(key)] += cost

    def hold(self, usd: float, key: str | None) -> Hold:
        hold = Hold(usd, _bucket(key))
        with self._lock:
            self._held += usd
            self._held_per_key[hold.key] += usd
        return hold

    def release(self, hold: Hold) -> None:
        with self._lock:
            self._held -= hold.usd
            self._held_per_key[hold.key] -= hold.usd

    def exhausted(self, key: str | None, now: float | None = None) -> str | None:
        """Why remote tiers are off limits now, or None. Held estimates count as spent."""
        with self._lock:
            self._roll(now)
            daily = self.config.daily_usd
            if daily is not None and self._total + self._others + self._held >= daily:
                return f"daily budget ${daily:g} spent"
            per_key = self.config.per_key_daily_usd
            if per_key is not None and self._spent_by(_bucket(key)) >= per_key:
                whose = "this API key" if key is not None else "requests without an API key"
                return f"daily budget ${per_key:g} for {whose} spent"
            return None

    def _spent_by(self, key: str) -> float:
        others = self._others_per_key.get(key, 0.0)
        return self._per_key[key] + others + self._held_per_key[key]

    def _roll(self, now: float | None) -> None:
        day = utc_day(now)
        if day > self._day:  # a clock set back past midnight had the day's spend forgotten
            self._roll_to(day)

    def _roll_to(self, day: int) -> None:
        self._day, self._total, self._others = day, 0.0, 0.0
        self._per_key.clear()
        self._others_per_key = {}


def _bucket(key: str | None) -> str:
    return KEYLESS if key is None else key
