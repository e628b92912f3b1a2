"""Turn a per-request knob into a score threshold, using held-aside calibration rows.

A `Calibration` is a table over the distinct router scores `t` of the calibration rows
(never the rows the router was trained on), sorted from high to low:
`share[t]` = fraction of rows with score >= t (sent strong), `pgr[t]` = the performance gap
recovered by sending exactly those rows strong (see `eval.py`).

- `max_strong_share=p`: the lowest threshold whose share is <= p (a budget cap).
- `min_quality=q`: the highest threshold whose PGR is >= q, i.e. the fewest strong calls that
  recover a fraction q of the weak -> strong quality gap (q=0.9 keeps 90% of the gain); when
  the strong model is no better on the rows, there is no gap and nothing goes strong.
- Both: the budget wins (the higher of the two thresholds).
Thresholds at the extremes: `NEVER` sends nothing strong, the lowest score sends everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smallfirst.errors import ConfigError

NEVER = math.inf


@dataclass(frozen=True)
class Calibration:
    thresholds: tuple[float, ...]  # distinct scores, descending
    share: tuple[float, ...]  # strong share at each threshold
    pgr: tuple[float, ...]  # PGR at each threshold
    n_rows: int
    weak_mean: float
    strong_mean: float

    def threshold_for_share(self, max_strong_share: float) -> float:
        _check_fraction("max_strong_share", max_strong_share)
        if max_strong_share <= 0:  # a budget of none: no score, however high, goes strong
            return NEVER
        best = NEVER
        for threshold, share in zip(self.thresholds, self.share, strict=True):
            if share > max_strong_share:
                break
            best = threshold
        return best

    def threshold_for_quality(self, min_quality: float) -> float:
        _check_fraction("min_quality", min_quality)
        # No gap to recover: the weak model alone is as good (it sent every request strong).
        if min_quality <= 0 or self.strong_mean <= self.weak_mean:
            return NEVER
        for threshold, gain in zip(self.thresholds, self.pgr, strict=True):
            if gain >= min_quality:
                return threshold
        return self.thresholds[-1] if self.thresholds else NEVER

    def threshold(
        self, *, max_strong_share: float | None = None, min_quality: float | None = None
    ) -> float:
        """The serve-time entry point: one threshold for the given knob(s)."""
        candidates = []
        if max_strong_share is not None:
            candidates.append(self.threshold_for_share(max_strong_share))
        if min_quality is not None:
            candidates.append(self.threshold_for_quality(min_quality))
        if not candidates:
            raise ConfigError("give max_strong_share, min_quality or both")
        return max(candidates)

    def to_json(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.thresholds),
            "share": list(self.share),
            "pgr": list(self.pgr),
            "n_rows": self.n_rows,
            "weak_mean": self.weak_mean,
            "strong_mean": self.strong_mean,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """The table as `to_json` wrote it; ValueError for one that could not have been (a
        column cut short was a 500 for a knob read to its end, a NaN decided nothing)."""
        table = cls(
            thresholds=tuple(float(x) for x in data["thresholds"]),
            share=tuple(float(x) for x in data["share"]),
            pgr=tuple(float(x) for x in data["pgr"]),
            n_rows=int(data["n_rows"]),
            weak_mean=float(data["weak_mean"]),
            strong_mean=float(data["strong_mean"]),
        )
        columns = (table.thresholds, table.share, table.pgr)
        if len({len(column) for column in columns}) != 1:
            raise ValueError("calibration columns thresholds, share and pgr differ in length")
        numbers = [*table.thresholds, *table.share, *table.pgr, table.weak_mean, table.strong_mean]
        if not all(math.isfinite(number) for number in numbers):
            raise ValueError("calibration holds numbers that are not finite")
        return table


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be within [0, 1], got {value}")


def fit_calibration(
    scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]
) -> Calibration:
    """Build the table from calibration rows' scores and outcomes (held aside from training)."""
    if not (len(scores) == len(weak) == len(strong)) or not scores:
        raise ConfigError("calibration needs equal-length, non-empty scores and outcomes")
    n = len(scores)
    weak_mean = sum(weak) / n
    strong_mean = sum(strong) / n
    gap = strong_mean - weak_mean
    order = sorted(range(n), key=lambda i: -scores[i])
    thresholds: list[float] = []
    shares: list[float] = []
    pgrs: list[float] = []
    gained = 0.0
    for position, index in enumerate(order):
        taken = position + 1
        gained += strong[index] - weak[index]
        is_last_of_tie = position == n - 1 or scores[order[position + 1]] != scores[index]
        if is_last_of_tie:
            thresholds.append(float(scores[index]))
            shares.append(taken / n)
            pgrs.append(gained / n / gap if gap else 0.0)
    return Calibration(
        thresholds=tuple(thresholds),
        share=tuple(shares),
        pgr=tuple(pgrs),
        n_rows=n,
        weak_mean=weak_mean,
        strong_mean=strong_mean,
    )
