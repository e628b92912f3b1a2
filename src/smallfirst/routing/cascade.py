"""Cascade confidence: is the small model sure enough of its own answer?

Signals are the answer's token logprobs under the small model itself: the mean (how surprised
the model was on average) and optionally the minimum (one very unsure token, e.g. a guessed
number). Thresholds live in config (`routing.cascade`).
"""

from __future__ import annotations

from dataclasses import dataclass

from smallfirst.config import CascadeConfig
from smallfirst.types import TokenLogprob


@dataclass(frozen=True)
class Confidence:
    mean_logprob: float
    min_logprob: float
    tokens: int

    def confident(self, config: CascadeConfig) -> bool:
        if self.tokens == 0:
            return False
        if self.mean_logprob < config.min_mean_logprob:
            return False
        return config.min_token_logprob is None or self.min_logprob >= config.min_token_logprob

    def describe(self) -> str:
        return (
            f"mean logprob {self.mean_logprob:.3f}, min {self.min_logprob:.3f}, "
            f"{self.tokens} tokens"
        )


def confidence(logprobs: list[TokenLogprob] | None) -> Confidence:
    values = [item.logprob for item in logprobs or []]
    if not values:
        return Confidence(mean_logprob=float("-inf"), min_logprob=float("-inf"), tokens=0)
    return Confidence(sum(values) / len(values), min(values), len(values))
