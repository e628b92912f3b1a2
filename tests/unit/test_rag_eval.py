from __future__ import annotations

import math

import pytest

from smallfirst.rag.eval import evaluate_run, percentile, trec_order


def test_metrics_match_a_hand_computed_case() -> None:
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d9": 1}, "q3": {"d1": 0}}
    run = {
        "q1": {"d2": 3.0, "d1": 2.0, "d3": 1.0},  # relevant at ranks 2 and 3
        "q2": {"d5": 1.0},  # nothing relevant found
        "q3": {"d1": 1.0},  # no relevant judgment: not averaged
    }
    metrics = evaluate_run(run, qrels)

    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert metrics["ndcg@10"] == pytest.approx((dcg / idcg + 0) / 2)
    assert metrics["recall@100"] == pytest.approx((1 + 0) / 2)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["n_queries"] == 2


def test_ties_follow_trec_eval_order() -> None:
    assert trec_order({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
