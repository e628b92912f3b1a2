"""Out-of-fold scores for the learned router: every row is scored by a model that never saw
it (nor, when grouped, any row of its group), so metrics on them are honest estimates."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from smallfirst.errors import InvalidRequest
from smallfirst.routing.data import RoutingRow, labelled
from smallfirst.routing.learned import (
    LearnedConfig,
    dataset_weights,
    featurize,
    fit_model,
    predict,
)


def fold_assignments(groups: Sequence[str], folds: int, seed: int) -> list[int]:
    """Shuffled groups dealt round-robin by size (largest first), so folds stay balanced."""
    import numpy as np

    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    if len(sizes) < folds:
        raise InvalidRequest(f"{len(sizes)} groups cannot fill {folds} folds; lower --folds")
    names = sorted(sizes)
    np.random.default_rng(seed).shuffle(names)
    names.sort(key=lambda name: -sizes[name])
    load = [0] * folds
    fold_of: dict[str, int] = {}
    for name in names:
        target = min(range(folds), key=lambda f: load[f])
        fold_of[name] = target
        load[target] += sizes[name]
    return [fold_of[group] for group in groups]


def out_of_fold_scores(
    rows: Sequence[RoutingRow],
    *,
    folds: int = 5,
    group_by: str = "none",
    seed: int = 0,
    config: LearnedConfig | None = None,
    cache_dir: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    train_only: Collection[str] = (),
) -> list[float]:
    """Scores for `rows` in order, each from a model trained on the other folds.

    Rows of the `train_only` datasets are in every fold's training set and are not scored
    (the result then covers the other rows only, in order): training on all of GSM8K and
    MT-Bench while folding MMLU by subject simulates scoring MMLU subjects never seen.
    """
    import numpy as np

    config = config or LearnedConfig()
    rows = labelled(rows)
    scored = np.array([row.dataset not in train_only for row in rows])
    groups = [row.group(group_by) for row, keep in zip(rows, scored, strict=True) if keep]
    assignment = np.full(len(rows), -1)
    assignment[scored] = fold_assignments(groups, folds, seed)
    features = featurize(
        [row.messages for row in rows], config, cache_dir=cache_dir, on_progress=on_progress
    )
    weak = np.array([row.weak_score for row in rows], dtype=np.float64)
    strong = np.array([row.strong_score for row in rows], dtype=np.float64)
    datasets = [row.dataset for row in rows]
    scores = np.zeros(len(rows))
    for fold in range(folds):
        test = assignment == fold
        train_sets = [name for name, held in zip(datasets, test, strict=True) if not held]
        model = fit_model(
            features.subset(~test),
            weak[~test],
            strong[~test],
            config,
            dataset_weights(train_sets, config),
        )
        scores[test] = predict(model, features.subset(test), config)
    return [float(x) for x in scores[scored]]
