"""Money: what a request cost on the tier that answered it, and what it would have cost on
the baseline (the big model everything would go to without smallfirst)."""

from __future__ import annotations

from typing import Protocol

from smallfirst.types import Usage


class Priced(Protocol):
    """Anything with prices per 1M tokens: a configured model, or the baseline."""

    @property
    def input_cost_per_1m(self) -> float: ...

    @property
    def output_cost_per_1m(self) -> float: ...


def request_cost(prices: Priced, usage: Usage) -> float:
    """USD for `usage` at `prices` per 1M tokens."""
    return (
        usage.prompt_tokens * prices.input_cost_per_1m
        + usage.completion_tokens * prices.output_cost_per_1m
    ) / 1_000_000
