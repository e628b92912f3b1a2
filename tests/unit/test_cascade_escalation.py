"""The cascade's verdict on a draft (`routing/cascade.py`): kept at its thresholds, escalated
below them, and under a strong-call budget, escalated at the cut recent drafts make."""

from __future__ import annotations

import pytest

from smallfirst.config import CascadeConfig
from smallfirst.routing.cascade import Confidence, escalation, least_sure
from smallfirst.routing.traffic import TrafficCalibration


def sure(mean: float, least: float | None = None) -> Confidence:
    return Confidence(mean_logprob=mean, min_logprob=mean if least is None else least, tokens=4)


@pytest.mark.parametrize(("mean", "escalates"), [(-1.0, False), (-1.0001, True), (-0.5, False)])
def test_a_draft_at_the_mean_threshold_is_kept_and_one_below_it_escalates(
    mean: float, escalates: bool
) -> None:
    config = CascadeConfig(min_mean_logprob=-1.0)
    verdict = escalation(sure(mean), config, TrafficCalibration(), None)
    assert verdict.escalate is escalates
    assert (verdict.score, verdict.threshold) == (-mean, 1.0)


def test_one_token_below_the_token_threshold_escalates_a_draft_sure_on_average() -> None:
    config = CascadeConfig(min_mean_logprob=-1.0, min_token_logprob=-5.0)
    traffic = TrafficCalibration()
    assert escalation(sure(-0.2, least=-6.0), config, traffic, None).escalate
    assert not escalation(sure(-0.2, least=-5.0), config, traffic, None).escalate


def test_under_a_budget_a_draft_as_unsure_as_the_cut_escalates() -> None:
    """After the warm-up, a 50% budget over unsureness 3.0 and 1.0 cuts at 3.0: a draft that
    unsure goes up (ties at the cut go strong, as with every router), a surer one stays."""
    config = CascadeConfig(min_mean_logprob=-10.0)  # the configured bar would keep them all
    traffic = TrafficCalibration(warm_up=2)
    traffic.observe(3.0)
    traffic.observe(1.0)
    at_the_cut = escalation(sure(-3.0), config, traffic, 0.5)
    assert (at_the_cut.escalate, at_the_cut.threshold) == (True, 3.0)
    assert not escalation(sure(-2.9), config, traffic, 0.5).escalate


def test_of_several_drafts_the_least_sure_decides_and_an_empty_one_first() -> None:
    drafts = [sure(-0.1), sure(-3.0), sure(-0.5)]
    assert least_sure(drafts) == sure(-3.0)
    empty = Confidence(float("-inf"), float("-inf"), 0)
    assert least_sure([*drafts, empty]) == empty


@pytest.mark.parametrize(("mean", "escalates"), [(-1.0, False), (-1.0001, True)])
def test_while_a_budget_warms_up_a_draft_at_the_configured_bar_is_kept_as_without_one(
    mean: float, escalates: bool
) -> None:
    """`min_mean_logprob` is the least mean kept, with or without a strong-call budget."""
    config = CascadeConfig(min_mean_logprob=-1.0)
    traffic = TrafficCalibration()
    traffic.observe(0.0)  # one sure draft seen: a strong call is within the 50% budget
    verdict = escalation(sure(mean), config, traffic, 0.5)
    assert verdict.escalate is escalates
    assert "threshold: mean logprob -1.000" in verdict.why
