"""A strong-call budget for routers without a calibration table (`rules`, `length`,
`random`): the threshold is the score that the top `max_strong_share` of recent requests
reached, so the observed strong share follows the budget on the traffic actually served.

Learned artifacts carry a calibration measured on held-aside labelled rows instead
(`calibrate.py`); a quality target (`min_quality`) needs such labels, so it stays theirs.
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
            self._observe(score, score >= cut.threshold)
        return cut

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
    """The router's decision; a strong-call budget for a router without a calibration table
    is met on recent traffic instead (`TrafficCalibration`)."""
    if router.calibration is not None or max_strong_share is None or min_quality is not None:
        return router.decide(
            messages,
            threshold=threshold,
            max_strong_share=max_strong_share,
            min_quality=min_quality,
        )
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
