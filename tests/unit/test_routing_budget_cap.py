"""A calibrated router's strong-call budget is a cap on the traffic served: its calibrated
threshold gives the share on traffic like its training rows, and a higher threshold from
recent traffic takes over on other traffic."""

from __future__ import annotations

import random

from smallfirst.routing.base import Messages, RouteDecision, Router
from smallfirst.routing.calibrate import Calibration
from smallfirst.routing.traffic import TrafficCalibration, decide_within_budget

CALIBRATED_THRESHOLD = 0.6  # what the table gives a 30% budget


class Calibrated(Router):
    """Scores are the message's text; the table says 0.6 sends 30% strong."""

    name = "calibrated"

    def score(self, messages: Messages) -> float:
        return float(messages[-1]["content"])

    @property
    def calibration(self) -> Calibration:
        return Calibration(
            thresholds=(0.9, CALIBRATED_THRESHOLD, 0.1),
            share=(0.1, 0.3, 0.9),
            pgr=(0.2, 0.5, 0.95),
            n_rows=100,
            weak_mean=0.5,
            strong_mean=0.8,
        )


def decided(score: float, traffic: TrafficCalibration) -> RouteDecision:
    """The decision on a prompt `Calibrated` scores `score`, under a 30% budget."""
    return decide_within_budget(
        Calibrated(),
        [{"role": "user", "content": str(score)}],
        traffic,
        threshold=None,
        max_strong_share=0.3,
        min_quality=None,
    )


def strong_share(scores: list[float], traffic: TrafficCalibration) -> float:
    return sum(decided(score, traffic).strong for score in scores) / len(scores)


def test_traffic_unlike_the_calibration_rows_is_held_to_the_budget() -> None:
    """Every score above the calibrated threshold: it alone sent all of them strong (GSM8K
    alone went strong 71% of the time at a 30% budget, measured on the dev artifact)."""
    rng = random.Random(7)
    hard = [0.65 + 0.3 * rng.random() for _ in range(400)]
    traffic = TrafficCalibration(window=200, warm_up=20)
    strong_share(hard[:200], traffic)  # the window fills
    assert strong_share(hard[200:], traffic) <= 0.31


def test_traffic_like_the_calibration_rows_keeps_the_calibrated_decisions() -> None:
    """Scores where the calibrated threshold already sends fewer than the budget allows."""
    rng = random.Random(11)
    easy = [0.62 + 0.3 * rng.random() if i % 10 == 0 else 0.5 * rng.random() for i in range(300)]
    traffic = TrafficCalibration(window=200, warm_up=20)
    for score in easy:
        decision = decided(score, traffic)
        assert decision.threshold == CALIBRATED_THRESHOLD
        assert decision.strong == (score >= CALIBRATED_THRESHOLD)
        assert decision.basis == "calibrated threshold for a 30% strong-call budget"


def test_the_reason_names_the_traffic_threshold_when_it_takes_over() -> None:
    traffic = TrafficCalibration(window=50, warm_up=5)
    for _ in range(50):
        traffic.observe(0.8)
    decision = decided(0.8, traffic)
    assert not decision.strong  # 0.8 ties every recent score: the tie goes weak
    assert decision.threshold > 0.8
    assert decision.basis == (
        "threshold from recent traffic for a 30% strong-call budget, above the calibrated 0.600"
    )


def test_a_score_at_a_traffic_threshold_above_the_calibrated_one_goes_strong() -> None:
    traffic = TrafficCalibration(window=10, warm_up=5)
    for score in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.7, 0.7, 0.7, 0.7):
        traffic.observe(score)
    decision = decided(0.85, traffic)  # 30% of ten: 0.95, 0.9 and 0.85
    assert decision.threshold == 0.85
    assert decision.strong


def test_the_traffic_threshold_takes_over_once_the_warm_up_is_seen() -> None:
    traffic = TrafficCalibration(window=8, warm_up=4)
    for _ in range(4):
        traffic.observe(0.9)
    decision = decided(0.9, traffic)  # ties every recent score: weak
    assert decision.threshold > 0.9
    assert not decision.strong
