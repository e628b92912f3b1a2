"""Money: what a request cost on the tier that answered it."""

from __future__ import annotations

from smallfirst.types import ModelInfo, Usage


def request_cost(model: ModelInfo, usage: Usage) -> float:
    """USD for `usage` at the model's configured prices per 1M tokens."""
    return (
        usage.prompt_tokens * model.input_cost_per_1m
        + usage.completion_tokens * model.output_cost_per_1m
    ) / 1_000_000
