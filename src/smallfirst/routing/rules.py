"""Transparent heuristics: every point of the score comes from a cue a user can read.

Weights are hand-set (not fitted) from what the weak/strong gap is known to follow in the
RouteLLM data: long prompts, code, arithmetic and multi-step reasoning favour the strong model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from smallfirst.routing.base import Messages, Router
from smallfirst.routing.features import CHEAP_FEATURE_NAMES, cheap_features

# feature name -> weight; the sum is squashed to [0, 1) by x / (1 + x)
RULE_WEIGHTS: Mapping[str, float] = {
    "log_chars": 0.25,
    "log_numbers": 0.35,
    "code_cues": 0.6,
    "math_cues": 0.5,
    "multi_step_cues": 0.3,
    "turns": 0.2,
}


class RulesRouter(Router):
    name: ClassVar[str] = "rules"
    # The squashed sum puts almost every benchmark prompt above 0.5 (all of GSM8K, MT-Bench
    # and MMLU dev, and "What is the capital of France?"), which made small-first send nearly
    # everything strong. At 0.70 the dev sets send 72% / 53% / 19% of GSM8K / MT-Bench / MMLU
    # strong (PGR 0.72 / 0.82 / 0.24); short chat (0.3-0.6) stays local (docs/routing.md).
    default_threshold: ClassVar[float] = 0.70

    def explain(self, messages: Messages) -> dict[str, float]:
        """Each cue's contribution to the raw score (the reason shown to users)."""
        values = dict(zip(CHEAP_FEATURE_NAMES, cheap_features(messages), strict=True))
        return {name: weight * values[name] for name, weight in RULE_WEIGHTS.items()}

    def score(self, messages: Messages) -> float:
        raw = sum(self.explain(messages).values())
        return raw / (1.0 + raw)
