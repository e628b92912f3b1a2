"""The strong-call budget for routers without a calibration table, met on recent traffic."""

from __future__ import annotations

import math

import pytest

from smallfirst.config import RoutingConfig
from smallfirst.errors import ConfigError
from smallfirst.routing.base import Messages, RouteDecision, Router, check_routing
from smallfirst.routing.baselines import LengthRouter
from smallfirst.routing.rules import RulesRouter
from smallfirst.routing.traffic import Cut, TrafficCalibration, decide_within_budget


def seen(*scores: float, warm_up: int = 4) -> TrafficCalibration:
    traffic = TrafficCalibration(window=8, warm_up=warm_up)
    for score in scores:
        traffic.observe(score)
    return traffic


def test_the_budget_keeps_the_top_share_of_recent_scores() -> None:
    traffic = seen(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    cut = traffic.threshold(0.25, fallback=0.5)  # two of eight may go strong
    assert sum(score >= cut for score in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) == 2
    assert cut == 0.7
    assert traffic.threshold(1.0, fallback=0.5) == 0.1
    assert traffic.threshold(0.0, fallback=0.5) == math.inf


def test_ties_at_the_cut_go_weak_and_old_scores_leave_the_window() -> None:
    tied = seen(0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1)
    cut = tied.threshold(0.25, fallback=0.5)  # 0.9 fits; the three 0.5s would overspend
    assert 0.5 < cut <= 0.9
    for _ in range(8):
        tied.observe(0.2)
    assert tied.threshold(0.25, fallback=0.5) > 0.2  # only 0.2s left: all tie, none strong


def test_a_budget_below_one_of_the_recent_requests_sends_none_strong() -> None:
    traffic = seen(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    assert traffic.threshold(0.1, fallback=0.5) == math.inf  # 10% of eight: not one


class ScoredAsWritten(Router):
    """No calibration table; a message scores the number it is."""

    name = "scored"

    def score(self, messages: Messages) -> float:
        return float(messages[-1]["content"])


def test_a_score_at_the_traffic_threshold_goes_strong() -> None:
    traffic = seen(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    decision = decide_within_budget(
        ScoredAsWritten(),
        [{"role": "user", "content": "0.7"}],
        traffic,
        threshold=None,
        max_strong_share=0.25,
        min_quality=None,
    )
    assert decision.threshold == 0.7  # two of eight: 0.8 and 0.7
    assert decision.strong


def strong_calls_within_half(router: Router, content: str, requests: int) -> int:
    """How many of `requests` alike go strong during the warm-up of a 50% budget; the share
    is checked after each."""
    traffic = TrafficCalibration(warm_up=20)
    strong = 0
    for seen_so_far in range(1, requests + 1):
        decision = decide_within_budget(
            router,
            [{"role": "user", "content": content}],
            traffic,
            threshold=None,
            max_strong_share=0.5,
            min_quality=None,
        )
        strong += decision.strong
        assert strong <= 0.5 * seen_so_far
    return strong


def test_scores_at_the_default_threshold_count_against_the_budget_while_warming_up() -> None:
    at_the_threshold = str(ScoredAsWritten.default_threshold)
    assert strong_calls_within_half(ScoredAsWritten(), at_the_threshold, 10) == 5


def test_the_fallback_holds_until_enough_requests_are_seen() -> None:
    assert seen(0.9, 0.8, 0.7).threshold(0.5, fallback=0.42) == 0.42


def test_the_budget_is_a_cap_while_warming_up_too() -> None:
    """QA: with the default threshold alone, 20 of the first 20 requests (after every
    restart) went strong against a 50% budget."""
    strong_by_default = "word " * 3000
    assert strong_calls_within_half(LengthRouter(), strong_by_default, 20) == 10


def test_a_budget_of_none_holds_from_the_first_request() -> None:
    assert seen().threshold(0.0, fallback=0.5) == math.inf  # not the 0.5 fallback
    decision = decide_within_budget(
        LengthRouter(),
        [{"role": "user", "content": "word " * 3000}],
        seen(),
        threshold=None,
        max_strong_share=0.0,
        min_quality=None,
    )
    assert not decision.strong


def test_the_reason_says_which_threshold_stood_in_for_the_budget() -> None:
    """QA: before any request, the reason said the default threshold applied while the
    threshold applied (and returned) was infinite: a first strong call would be 100%."""

    decision = decided_hi(seen())
    assert decision.basis.startswith("no strong call now: one would pass a 30%")
    assert decision.threshold == math.inf
    decision = decided_hi(seen(0.1, 0.2, 0.3))  # 1 of 4 is within 30%
    assert "default threshold until 4 requests" in decision.basis
    assert decision.threshold == LengthRouter().default_threshold
    assert "threshold from recent traffic" in decided_hi(seen(0.1, 0.2, 0.3, 0.4)).basis


def decided_hi(traffic: TrafficCalibration) -> RouteDecision:
    """The length router's decision on "Hi" under a 30% strong-call budget."""
    return decide_within_budget(
        LengthRouter(),
        [{"role": "user", "content": "Hi"}],
        traffic,
        threshold=None,
        max_strong_share=0.3,
        min_quality=None,
    )


class Overtaken(TrafficCalibration):
    """Another request's decision lands just before this one takes the lock."""

    def cut_for(self, score: float, max_strong_share: float, fallback: float) -> Cut:
        self.observe(0.9)
        return super().cut_for(score, max_strong_share, fallback)


def test_the_reason_is_that_of_the_threshold_when_the_warm_up_ends_under_way() -> None:
    """The reason read the warm-up under one hold of the lock and the threshold under
    another: a request overtaken by the one that ended the warm-up said "default threshold"
    beside a threshold from recent traffic."""
    traffic = Overtaken(window=8, warm_up=4)
    for score in (0.1, 0.2, 0.3):
        traffic.observe(score)
    decision = decided_hi(traffic)
    assert "threshold from recent traffic" in decision.basis
    assert decision.threshold == 0.9  # the top 30% of the four scores now seen


def test_rules_default_threshold_keeps_short_chat_local() -> None:
    rules = RulesRouter()
    for text in ("Hi", "What is the capital of France?", "Write a haiku about rain"):
        assert not rules.decide([{"role": "user", "content": text}]).strong


def test_start_up_refuses_what_the_router_cannot_do() -> None:
    with pytest.raises(ConfigError, match="min_quality needs a learned router"):
        check_routing(RoutingConfig(router="rules", min_quality=0.9))
    with pytest.raises(ConfigError, match="unknown router 'nonsense'"):
        check_routing(RoutingConfig(router="nonsense"))
    check_routing(RoutingConfig(router="rules", max_strong_share=0.3))
    check_routing(RoutingConfig(router="cascade"))
    with pytest.raises(ConfigError, match="calibrate-cascade --min-quality"):
        check_routing(RoutingConfig(router="cascade", min_quality=0.9))  # was accepted, unused
