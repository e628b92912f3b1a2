"""The one percentile every latency report here uses, so that a p95 from `rag eval`, `privacy
eval` and the benchmark scripts means the same thing (and what `smallfirst stats` computes in
SQL)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: float) -> float:
    """The `pct`-th percentile (0-100), interpolated linearly between the two closest ranks:
    numpy's default and `statistics.quantiles(method="inclusive")`. 0.0 when there are none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = pct / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
