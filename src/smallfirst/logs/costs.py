"""Money: what a request cost on the tier that answered it, and what it would have cost on
the baseline (the big model everything would go to without smallfirst)."""

from __future__ import annotations

import math
from typing import Protocol

from smallfirst.completions import Usage


class Priced(Protocol):
    """Anything with prices per 1M tokens: a configured model, or the baseline."""

    @property
    def input_cost_per_1m(self) -> float: ...

    @property
    def cached_input_cost_per_1m(self) -> float | None: ...

    @property
    def output_cost_per_1m(self) -> float: ...


def request_cost(prices: Priced, usage: Usage) -> float:
    """USD for `usage` at `prices` per 1M tokens. Prompt tokens a cache held cost the cached
    input price where one is set (else the full input price)."""
    cached_price = prices.cached_input_cost_per_1m
    if cached_price is None:
        cached_price = prices.input_cost_per_1m
    cached = min(usage.cached_tokens, usage.prompt_tokens)  # an upstream's count, trusted so far
    return (
        (usage.prompt_tokens - cached) * prices.input_cost_per_1m
        + cached * cached_price
        + usage.completion_tokens * prices.output_cost_per_1m
    ) / 1_000_000


def dollars(value: float) -> str:
    """An amount as reports print it: 4 decimals, or 2 significant digits below a cent, so
    a request's $0.000042 does not read as $0.0000."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.4f}"
    return f"{value:.{1 - math.floor(math.log10(abs(value)))}f}"


def signed_dollars(value: float) -> str:
    """An amount that may be negative (a saving), with its dollar sign: `-$0.0012`, where
    `$` + `dollars()` read `$-0.0012`."""
    return ("-$" if value < 0 else "$") + dollars(abs(value))


def against_budget(spent: float, budget: float | None) -> str:
    """`0.4200 (42%)`, `1.2000 (120%, spent)`: a day's spend as a daily budget holds it (spent
    once reached); without a budget, the amount alone."""
    if budget is None:
        return dollars(spent)
    notes = [f"{spent / budget:.0%}"] if budget > 0 else []
    if spent >= budget:
        notes.append("spent")
    return f"{dollars(spent)} ({', '.join(notes)})"
