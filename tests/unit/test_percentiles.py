import statistics

import pytest

from smallfirst.percentiles import percentile


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0


def test_percentile_agrees_with_the_inclusive_quantiles_stats_uses() -> None:
    values = [float(v * v % 17) for v in range(23)]
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    assert [percentile(values, q) for q in (25, 50, 75)] == pytest.approx(quartiles)
