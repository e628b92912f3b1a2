"""Cost–quality metrics for routers, as RouteLLM (arXiv 2406.18665, `routellm/evals`).

Definitions (all on one labelled set with weak scores `w`, strong scores `s`, router scores `r`):

- **Thresholds**: the quantiles 0, 10%, ..., 100% of `r` (numpy's linear interpolation, as
  `pd.qcut(..., retbins=True)`). At every threshold but the last a row goes to the strong
  model when `r >= threshold`; at the last (the maximum) when `r > threshold`, so it sends none.
- **Quality** at a threshold: mean of `s` over rows sent strong and `w` over the others.
- **Strong share**: fraction of rows sent strong.
- **PGR** (performance gap recovered) = (quality - mean(w)) / (mean(s) - mean(w)).
- **APGR**: trapezoid area under PGR over strong share in [0, 1] (points sorted by share).
  Random routing gives ~0.5; an oracle can exceed 1 because some rows are better on weak.
- **CPT(x%)** (call-performance threshold): the strong share, in percent, at which the curve
  first reaches PGR = x/100, linearly interpolated between the two neighbouring points.
- **Cost saved at 95%**: 1 - (strong share at which quality first reaches 0.95 * mean(s)),
  interpolated the same way; i.e. the share of calls kept off the strong model while keeping
  95% of the strong model's quality (1.0 when the weak model alone already reaches it).

When mean(s) == mean(w) there is no gap to recover: PGR, and so APGR and CPT, are undefined
(nan here, null in `as_dict`), not 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

QUANTILE_POINTS = 11  # 0%, 10%, ..., 100%
RANDOM_SEEDS = 20
NO_GAP = (
    "apgr, cpt50 and cpt80 are undefined: the weak and strong models have the same mean "
    "score ({mean:.4f}), so there is no quality gap to recover"
)
DEFAULT_PLOT_FORMAT = "png"


@dataclass(frozen=True)
class Curve:
    """Cost–quality points sorted by strong share (ascending)."""

    strong_share: tuple[float, ...]
    quality: tuple[float, ...]
    weak_mean: float
    strong_mean: float

    @property
    def pgr(self) -> tuple[float, ...]:
        gap = self.strong_mean - self.weak_mean
        if gap == 0:
            return tuple(0.0 for _ in self.quality)
        return tuple((q - self.weak_mean) / gap for q in self.quality)


@dataclass(frozen=True)
class Metrics:
    apgr: float
    cpt50: float  # percent of strong calls
    cpt80: float  # percent of strong calls
    cost_saved_at_95: float  # fraction of calls kept off the strong model
    n: int
    weak_mean: float
    strong_mean: float

    def as_dict(self) -> dict[str, Any]:
        """Rounded; an undefined metric (nan) is None, which JSON can hold."""
        return {
            key: None if math.isnan(value) else round(value, 4)
            for key, value in asdict(self).items()
        }


def cost_quality_curve(
    scores: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    points: int = QUANTILE_POINTS,
) -> Curve:
    """The RouteLLM threshold sweep (see the module docstring)."""
    import numpy as np

    r = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    if not (len(r) == len(w) == len(s)) or len(r) == 0:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    thresholds = np.quantile(r, np.linspace(0.0, 1.0, points))
    shares: list[float] = []
    qualities: list[float] = []
    for index, threshold in enumerate(thresholds):
        to_strong = r > threshold if index == len(thresholds) - 1 else r >= threshold
        shares.append(float(to_strong.mean()))
        qualities.append(float(np.where(to_strong, s, w).mean()))
    order = sorted(range(len(shares)), key=lambda i: (shares[i], qualities[i]))
    return Curve(
        strong_share=tuple(shares[i] for i in order),
        quality=tuple(qualities[i] for i in order),
        weak_mean=float(w.mean()),
        strong_mean=float(s.mean()),
    )


def _trapezoid(y: Sequence[float], x: Sequence[float]) -> float:
    return sum((x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 for i in range(1, len(x)))


def first_share_reaching(shares: Sequence[float], values: Sequence[float], target: float) -> float:
    """Smallest strong share where `values` first reaches `target`, interpolated; nan if never."""
    for i, value in enumerate(values):
        if value >= target:
            if i == 0 or values[i] == values[i - 1]:
                return shares[i]
            fraction = (target - values[i - 1]) / (values[i] - values[i - 1])
            return shares[i - 1] + fraction * (shares[i] - shares[i - 1])
    return float("nan")


def apgr(curve: Curve) -> float:
    return _trapezoid(curve.pgr, curve.strong_share)


def metrics_from_curve(curve: Curve, n: int) -> Metrics:
    pgr = curve.pgr
    share_at_95 = first_share_reaching(curve.strong_share, curve.quality, 0.95 * curve.strong_mean)
    no_gap = curve.strong_mean == curve.weak_mean
    return Metrics(
        apgr=math.nan if no_gap else apgr(curve),
        cpt50=math.nan if no_gap else 100 * first_share_reaching(curve.strong_share, pgr, 0.5),
        cpt80=math.nan if no_gap else 100 * first_share_reaching(curve.strong_share, pgr, 0.8),
        cost_saved_at_95=1.0 - share_at_95,
        n=n,
        weak_mean=curve.weak_mean,
        strong_mean=curve.strong_mean,
    )


def evaluate_scores(
    scores: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
) -> tuple[Metrics, Curve]:
    curve = cost_quality_curve(scores, weak, strong)
    return metrics_from_curve(curve, len(scores)), curve


def random_baseline(
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    seeds: int = RANDOM_SEEDS,
) -> tuple[Metrics, Curve]:
    """Uniform random scores, one curve per seed, points averaged over seeds (as the README)."""
    import numpy as np

    curves = [
        cost_quality_curve(np.random.default_rng(seed).random(len(weak)), weak, strong)
        for seed in range(seeds)
    ]
    averaged = Curve(
        strong_share=tuple(np.mean([c.strong_share for c in curves], axis=0).tolist()),
        quality=tuple(np.mean([c.quality for c in curves], axis=0).tolist()),
        weak_mean=curves[0].weak_mean,
        strong_mean=curves[0].strong_mean,
    )
    return metrics_from_curve(averaged, len(weak)), averaged


def plot_path(path: Path) -> Path:
    """Where `plot_curves` writes for `path`: a name without a suffix gets `.png` (as
    matplotlib would add it); raises ValueError for a suffix matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    if not path.suffix:
        return path.with_name(f"{path.name}.{DEFAULT_PLOT_FORMAT}")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ValueError(
            f"unknown image format {path.suffix!r}; use one of {', '.join(sorted(formats))}"
        )
    return path


def plot_curves(curves: dict[str, Curve], path: str | Path, title: str) -> None:
    """Quality over strong-call share for each named curve, with weak/strong reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    reference = next(iter(curves.values()))
    for name, curve in curves.items():
        style = "--" if name.startswith("random") else "-"
        axes.plot(
            [100 * x for x in curve.strong_share], curve.quality, style, marker=".", label=name
        )
    axes.axhline(reference.weak_mean, color="grey", linestyle=":", label="weak only")
    axes.axhline(reference.strong_mean, color="red", linestyle=":", label="strong only")
    axes.set_xlabel("strong model calls (%)")
    axes.set_ylabel("quality (mean score)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
