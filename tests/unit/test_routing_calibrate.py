"""Calibration turns a knob into a threshold that holds on rows it was not fitted on."""

from __future__ import annotations

import random

import pytest

from smallfirst.errors import ConfigError
from smallfirst.routing.calibrate import NEVER, Calibration, fit_calibration
from smallfirst.routing.eval import evaluate_scores


def _rows(n: int, seed: int) -> tuple[list[float], list[float], list[float]]:
    """Scores that carry signal: a higher score makes 'only strong is right' likelier."""
    rng = random.Random(seed)
    scores, weak, strong = [], [], []
    for _ in range(n):
        score = rng.random()
        strong_only = rng.random() < 0.1 + 0.5 * score
        scores.append(score)
        weak.append(0.0 if strong_only else 1.0)
        strong.append(1.0)
    return scores, weak, strong


@pytest.mark.parametrize("target", [0.1, 0.3, 0.6])
def test_share_target_holds_on_held_aside_rows(target: float) -> None:
    calibration = fit_calibration(*_rows(1500, seed=3))
    threshold = calibration.threshold(max_strong_share=target)
    new_scores, _, _ = _rows(1500, seed=4)
    share = sum(s >= threshold for s in new_scores) / len(new_scores)
    assert share == pytest.approx(target, abs=0.04)


def test_quality_target_holds_on_held_aside_rows() -> None:
    calibration = fit_calibration(*_rows(2000, seed=5))
    threshold = calibration.threshold(min_quality=0.8)
    scores, weak, strong = _rows(2000, seed=6)
    chosen = [s if r >= threshold else w for r, w, s in zip(scores, weak, strong, strict=True)]
    gap = sum(strong) / len(strong) - sum(weak) / len(weak)
    pgr = (sum(chosen) / len(chosen) - sum(weak) / len(weak)) / gap
    assert pgr == pytest.approx(0.8, abs=0.06)
    # and it needs fewer strong calls than sending everything
    assert sum(r >= threshold for r in scores) < len(scores)


def test_budget_wins_when_both_knobs_conflict() -> None:
    calibration = fit_calibration(*_rows(1000, seed=7))
    both = calibration.threshold(max_strong_share=0.1, min_quality=0.95)
    assert both == calibration.threshold(max_strong_share=0.1)


def test_extremes_and_bad_values() -> None:
    calibration = fit_calibration([0.2, 0.4, 0.4, 0.9], [1.0, 0.0, 1.0, 0.0], [1.0] * 4)
    assert calibration.threshold(max_strong_share=0.0) == NEVER
    assert calibration.threshold(max_strong_share=1.0) == 0.2
    # ties at 0.4 move together: share .5 is not reachable without .75
    assert calibration.threshold(max_strong_share=0.5) == 0.9
    with pytest.raises(ConfigError, match="max_strong_share"):
        calibration.threshold(max_strong_share=1.5)
    with pytest.raises(ConfigError):
        calibration.threshold()


def test_json_round_trip_and_agreement_with_eval() -> None:
    scores, weak, strong = _rows(500, seed=8)
    calibration = fit_calibration(scores, weak, strong)
    assert Calibration.from_json(calibration.to_json()) == calibration
    metrics, _ = evaluate_scores(scores, weak, strong)
    assert calibration.pgr[-1] == pytest.approx(1.0)  # all strong recovers the whole gap
    assert metrics.apgr > 0.5


def test_a_quality_target_met_exactly_takes_the_fewest_strong_calls() -> None:
    """Sending the 0.9 row strong recovers half the gap: a target of exactly half is met
    there, without the 0.5 row."""
    calibration = fit_calibration([0.9, 0.5], [0.0, 0.0], [1.0, 1.0])
    assert calibration.pgr == (0.5, 1.0)
    assert calibration.threshold(min_quality=0.5) == 0.9
    assert calibration.threshold(min_quality=0.51) == 0.5


@pytest.mark.parametrize("strong", [[0.0, 1.0], [1.0, 1.0]], ids=["worse", "as good"])
def test_a_strong_model_no_better_than_the_weak_one_gets_no_call_for_quality(
    strong: list[float],
) -> None:
    """No gap to recover: sending anything strong only costs (the lowest score sent every
    request strong, or a gap below zero read as one recovered)."""
    calibration = fit_calibration([0.9, 0.5], [1.0, 1.0], strong)
    assert calibration.threshold(min_quality=0.5) == NEVER
    assert calibration.threshold(min_quality=1.0) == NEVER
