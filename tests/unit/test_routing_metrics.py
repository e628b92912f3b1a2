"""RouteLLM metrics on hand-computed cases, and the reference routers' basic behaviour."""

from __future__ import annotations

import math
import random

import pytest

from smallfirst.routing.base import load_router
from smallfirst.routing.eval import (
    cost_quality_curve,
    evaluate_scores,
    first_share_reaching,
    random_baseline,
)

WEAK = [1.0, 0.0, 1.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 1.0]


def test_hand_computed_oracle_on_four_rows() -> None:
    # Oracle scores [0, 1, 0, 1]: quantile thresholds 0 -> all strong, (0, 1] -> the two
    # failing rows (share .5, PGR 1), the last point -> none. Area = .5*.5/2 + .5*1 = .75.
    metrics, curve = evaluate_scores([0.0, 1.0, 0.0, 1.0], WEAK, STRONG)
    assert curve.strong_share[0] == 0.0
    assert curve.strong_share[-1] == 1.0
    assert metrics.apgr == pytest.approx(0.75)
    assert metrics.cpt50 == pytest.approx(25.0)
    assert metrics.cpt80 == pytest.approx(40.0)
    # quality .5 at share 0, 1.0 at share .5: reaches .95 at share .45
    assert metrics.cost_saved_at_95 == pytest.approx(0.55)


def _synthetic_outcomes(n: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    weak, strong = [], []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.3:  # only strong right
            weak.append(0.0)
            strong.append(1.0)
        elif draw < 0.4:  # only weak right
            weak.append(1.0)
            strong.append(0.0)
        else:
            both = float(rng.random() < 0.7)
            weak.append(both)
            strong.append(both)
    return weak, strong


def test_oracle_exceeds_one_and_reversed_is_below_half() -> None:
    weak, strong = _synthetic_outcomes(1000, seed=1)
    gain = [s - w for w, s in zip(weak, strong, strict=True)]
    oracle, _ = evaluate_scores(gain, weak, strong)
    reversed_oracle, _ = evaluate_scores([-g for g in gain], weak, strong)
    assert oracle.apgr >= 1.0
    assert reversed_oracle.apgr < 0.5
    assert oracle.cpt50 < reversed_oracle.cpt50


def test_random_baseline_is_about_half() -> None:
    weak, strong = _synthetic_outcomes(2000, seed=2)
    metrics, curve = random_baseline(weak, strong, seeds=20)
    assert metrics.apgr == pytest.approx(0.5, abs=0.03)
    assert metrics.cpt50 == pytest.approx(50.0, abs=5.0)
    assert len(curve.strong_share) == 11


def test_last_threshold_sends_nothing_strong_even_with_ties() -> None:
    curve = cost_quality_curve([0.5] * 10, [0.0] * 10, [1.0] * 10)
    assert curve.strong_share[0] == 0.0
    assert curve.quality[0] == 0.0
    assert curve.strong_share[-1] == 1.0


def test_the_share_reaching_a_target_is_the_first_interpolated_and_nan_if_none() -> None:
    """PGR reaches 1 once every request goes strong, so a curve short of its target is
    possible only as a part of one (it was tested with weak = strong: no gap, below)."""
    shares = [0.0, 0.25, 0.5, 1.0]
    assert first_share_reaching(shares, [0.0, 0.5, 0.5, 1.0], 0.5) == 0.25  # not the plateau's end
    assert first_share_reaching(shares, [0.0, 0.5, 0.5, 1.0], 0.75) == pytest.approx(0.75)
    assert first_share_reaching(shares, [0.5, 0.6, 0.7, 0.8], 0.5) == 0.0
    assert math.isnan(first_share_reaching(shares, [0.0, 0.2, 0.4, 0.6], 0.8))


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        evaluate_scores([0.1, 0.2], [0.0], [1.0])


@pytest.mark.parametrize("name", ["random", "length", "rules"])
def test_named_routers_score_in_unit_interval_and_repeat(name: str) -> None:
    router = load_router(name)
    messages = [{"role": "user", "content": "Solve 3x + 5 = 20, then explain each step."}]
    first = router.score(messages)
    assert 0.0 <= first <= 1.0
    assert router.score(messages) == first


def test_length_and_rules_rank_hard_prompts_higher() -> None:
    easy = [{"role": "user", "content": "Say hi."}]
    hard = [
        {
            "role": "user",
            "content": "Write a Python function that computes 17 * 23 + 4^5, then explain "
            "step by step why each intermediate result is correct.\n```def f(): return 1```",
        }
    ]
    for name in ("length", "rules"):
        router = load_router(name)
        assert router.score(hard) > router.score(easy)


def test_unknown_router_names_the_choices() -> None:
    from smallfirst.errors import ConfigError

    with pytest.raises(ConfigError, match="rules"):
        load_router("no-such-router")


def test_metrics_without_a_gap_are_undefined_not_zero() -> None:
    # weak and strong score the same on average: there is no gap for PGR to measure
    metrics, _ = evaluate_scores([0.1, 0.2, 0.3], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    assert math.isnan(metrics.apgr)
    report = metrics.as_dict()
    assert (report["apgr"], report["cpt50"], report["cpt80"]) == (None, None, None)
    assert report["cost_saved_at_95"] is not None
