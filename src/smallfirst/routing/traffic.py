"""A strong-call budget met on the traffic actually served: the threshold is the score that
the top `max_strong_share` of recent requests reached, so the observed strong share follows
the budget. It is the whole budget for routers without a calibration table (`rules`,
`length`, `random`).

A learned artifact's calibration (`calibrate.py`, measured on held-aside labelled rows) gives
the share on traffic like its training rows, not on other traffic (GSM8K alone went strong
71% of the time at a 30% budget): the budget is a cap, so its threshold is raised to the
traffic's when that is higher. A quality target (`min_quality`) needs labels, so it stays the
calibration's alone.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import NamedTuple

from smallfirst.routing.base import Messages, RouteDecision, Router


class Cut(NamedTuple):
    threshold: float
    warming_up: bool  # judged before `warm_up` scores were seen

    def goes_strong(self, score: float) -> bool:
        """A score at the threshold goes strong, and none at an infinite one (no strong call
        now): not even the cascade's infinite score, a draft with nothing to judge (it went
        strong every time, whatever the budget)."""
        return score >= self.threshold and math.isfinite(self.threshold)


class TrafficCalibration:
    """Scores of the last `window` routed requests; thread-safe (routers score off the loop)."""

    def __init__(self, window: int = 1000, warm_up: int = 20) -> None:
        self._scores: deque[float] = deque(maxlen=window)
        self.warm_up = warm_up
        self._warm_up_strong = 0  # requests sent strong while warming up
        self._lock = threading.Lock()

    def threshold(self, max_strong_share: float, fallback: float) -> float:
        """The lowest threshold that sends at most `max_strong_share` of recent requests
        strong (ties at the threshold all go strong). Until `warm_up` are seen, `fallback`
        while the strong share so far stays within the budget, else none strong (QA: the
        default threshold sent 20 of the first 20 strong against a 50% budget); a budget of
        none holds from the first request."""
        with self._lock:
            return self._threshold(max_strong_share, fallback)

    def observe(self, score: float, *, strong: bool = False) -> None:
        with self._lock:
            self._observe(score, strong)

    def cut_for(self, score: float, max_strong_share: float, fallback: float) -> Cut:
        """The threshold `score` is judged against; `score` is then one of the recent. Under
        one hold of the lock: requests deciding together each see the others' choices (the
        warm-up cap let 4 of 5 go strong against a 50% budget), and the decision's reason
        says whether this one was judged during the warm-up."""
        with self._lock:
            cut = Cut(self._threshold(max_strong_share, fallback), len(self._scores) < self.warm_up)
            self._observe(score, cut.goes_strong(score))
        return cut

    def cap_for(self, score: float, max_strong_share: float, calibrated: float) -> float:
        """The threshold `score` is judged against when a calibration gave `calibrated` for
        the budget: that, or the recent traffic's when higher. The calibration is trusted
        during the warm-up (a first request is not 100% of what it measured)."""
        with self._lock:
            threshold = calibrated
            if len(self._scores) >= self.warm_up:
                threshold = max(calibrated, self._threshold(max_strong_share, calibrated))
            self._observe(score, score >= threshold)
        return threshold

    def _threshold(self, max_strong_share: float, fallback: float) -> float:
        if max_strong_share <= 0:
            return math.inf
        recent = sorted(self._scores, reverse=True)
        if len(recent) < self.warm_up:
            within = self._warm_up_strong + 1 <= max_strong_share * (len(recent) + 1) + 1e-9
            return fallback if within else math.inf
        allowed = math.floor(max_strong_share * len(recent) + 1e-9)
        if allowed == 0:
            return math.inf
        return recent[allowed - 1] if allowed >= len(recent) else _between(recent, allowed)

    def _observe(self, score: float, strong: bool) -> None:
        if len(self._scores) < self.warm_up:
            self._warm_up_strong += strong
        self._scores.append(score)


def _between(descending: list[float], allowed: int) -> float:
    """A threshold that keeps the `allowed` highest scores strong and the next one weak;
    when they tie, the tie goes weak (the budget is a cap)."""
    kept, next_one = descending[allowed - 1], descending[allowed]
    return kept if kept > next_one else math.nextafter(kept, math.inf)


def decide_within_budget(
    router: Router,
    messages: Messages,
    traffic: TrafficCalibration,
    *,
    threshold: float | None,
    max_strong_share: float | None,
    min_quality: float | None,
) -> RouteDecision:
    """The router's decision; a strong-call budget is met on recent traffic
    (`TrafficCalibration`): for a router without a calibration table instead of one, for a
    calibrated one as a cap above its calibrated threshold."""
    if max_strong_share is None or min_quality is not None:
        return router.decide(
            messages,
            threshold=threshold,
            max_strong_share=max_strong_share,
            min_quality=min_quality,
        )
    if router.calibration is not None:
        return _capped_on_traffic(router, messages, traffic, max_strong_share)
    score = router.score(messages)
    fallback = router.default_threshold if threshold is None else threshold
    budget = f"a {max_strong_share:.0%} strong-call budget"
    cut, warming_up = traffic.cut_for(score, max_strong_share, fallback)
    if max_strong_share <= 0 or not warming_up:
        basis = f"threshold from recent traffic for {budget}"
    elif cut == fallback:
        basis = (
            f"the router's default threshold until {traffic.warm_up} requests are seen"
            f" (within {budget} so far)"
        )
    else:  # it said "the default threshold" when none could go strong (QA)
        basis = (
            f"no strong call now: one would pass {budget} so far (the router's default"
            f" threshold applies within it until {traffic.warm_up} requests are seen)"
        )
    return RouteDecision(score >= cut, score, cut, router.name, basis)


def _capped_on_traffic(
    router: Router, messages: Messages, traffic: TrafficCalibration, max_strong_share: float
) -> RouteDecision:
    """The calibrated decision, unless recent traffic needs a higher threshold to stay within
    the budget."""
    calibrated = router.decide(messages, max_strong_share=max_strong_share)
    cut = traffic.cap_for(calibrated.score, max_strong_share, calibrated.threshold)
    if cut == calibrated.threshold:
        return calibrated
    basis = (
        f"threshold from recent traffic for a {max_strong_share:.0%} strong-call budget, above"
        f" the calibrated {calibrated.threshold:.3f}"
    )
    return RouteDecision(calibrated.score >= cut, calibrated.score, cut, router.name, basis)
