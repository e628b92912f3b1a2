"""`smallfirst router ...`: train, score and evaluate routers offline.

Heavy imports (numpy, scikit-learn, onnxruntime, matplotlib) happen inside the commands.
Bad usage (missing file, unknown router) exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from smallfirst.cli.common import (
    check_writable,
    counted,
    fail,
    progress_on_stderr,
    require_extra_or_exit,
    require_file,
)
from smallfirst.paths import replaced_in_one_step, same_file

if TYPE_CHECKING:
    from smallfirst.routing.data import RoutingRow

app = typer.Typer(help="Train, score and evaluate routers.", no_args_is_help=True)

GROUP_CHOICES = ("subject", "dataset", "none")
DataOption = typer.Option(..., "--data", help="JSONL file(s) in the routing schema.")
SeedOption = typer.Option(
    0, "--seed", help="Random seed of the rows held aside and the folds: same seed, same result."
)
CacheOption = typer.Option(
    None, "--cache-dir", help="Keep prompt embeddings here between runs (e.g. /tmp/...)."
)


def _read(paths: list[Path], *, labels: bool = True) -> list[RoutingRow]:
    from smallfirst.errors import InvalidRequest
    from smallfirst.routing.data import read_many

    for path in paths:
        require_file(path, "data file")
    try:
        return read_many(paths, labels=labels)
    except InvalidRequest as exc:
        fail(exc.message)


@app.command()
def train(
    data: list[Path] = DataOption,
    router: str = typer.Option("learned", "--router", help="Only `learned` is trainable."),
    out: Path = typer.Option(..., "--out", help="Artifact directory to write."),
    calibration_share: float = typer.Option(
        0.2, "--calibration-share", help="Rows held aside to fit the calibration (0 = none)."
    ),
    seed: int = SeedOption,
    cache_dir: Path | None = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train a learned router on labelled rows and write a versioned artifact."""
    _check_trainable(router)
    require_extra_or_exit("routing")
    if not 0.0 <= calibration_share < 1.0:
        fail("--calibration-share must be in [0, 1)")
    check_writable(out, directory=True)
    _check_cache_dir(cache_dir)
    rows = _read(data)
    _say_unlabelled(rows)
    from smallfirst.errors import InvalidRequest
    from smallfirst.routing.learned import train_learned

    try:
        with progress_on_stderr("embedding prompts", len(rows), as_json) as advance:
            learned = train_learned(
                rows,
                calibration_share=calibration_share,
                seed=seed,
                cache_dir=cache_dir,
                on_progress=advance,
            )
    except InvalidRequest as exc:
        fail(f"{_names(data)}: {exc.message}")
    learned.save(out)
    summary = {"artifact": str(out), **learned.training_summary}
    typer.echo(json.dumps(summary) if as_json else _trained(summary))


def _trained(summary: dict[str, Any]) -> str:
    """`router train`'s summary for people to read."""
    datasets = ", ".join(f"{name} {n}" for name, n in summary["datasets"].items())
    subjects = f", {counted(summary['subjects'], 'subject')}" if summary["subjects"] else ""
    return (
        f"wrote {summary['artifact']}: trained on {counted(summary['rows'], 'row')}"
        f" ({datasets}{subjects}), {summary['calibration_rows']} of them held aside for the"
        f" calibration; mean score weak {summary['weak_mean']:.3f}, strong"
        f" {summary['strong_mean']:.3f}"
    )


@app.command()
def score(
    router: str = typer.Option(..., "--router", help="random | length | rules | ARTIFACT"),
    data: list[Path] = DataOption,
    out: Path = typer.Option(
        ..., "--out", help="JSONL: one {id, score} per input row; '-' is standard output."
    ),
    cache_dir: Path | None = CacheOption,
) -> None:
    """Score every row (never reading its labels); higher = needs the strong model."""
    _check_router_name(router, "score")
    to_stdout = out == Path("-")  # it made a file named "-"
    if not to_stdout:
        check_writable(out)
        _check_not_data(out, data)
    _check_cache_dir(cache_dir)
    chosen = _load(router)
    rows = _read(data, labels=False)
    if not rows:  # a file cut to nothing wrote an empty score file and exited 0
        fail(f"{_names(data)}: no rows to score")
    from smallfirst.routing.learned import LearnedRouter

    with progress_on_stderr("scoring", len(rows), False) as advance:
        if isinstance(chosen, LearnedRouter):
            scores = chosen.score_batch(
                [row.messages for row in rows], cache_dir=cache_dir, on_progress=advance
            )
        else:
            scores = chosen.score_batch([row.messages for row in rows])
    lines = [
        json.dumps({"id": row.given_id, "score": value}) + "\n"
        for row, value in zip(rows, scores, strict=True)
    ]
    if to_stdout:
        typer.echo("".join(lines), nl=False)
        return
    with replaced_in_one_step(out) as aside:
        aside.write_text("".join(lines), encoding="utf-8")
    typer.echo(f"wrote {len(rows)} scores to {out}", err=True)


@app.command(name="eval")
def evaluate(
    data: list[Path] = DataOption,
    router: str = typer.Option(..., "--router", help="random | length | rules | learned | PATH"),
    folds: int = typer.Option(5, "--folds", help="k for out-of-fold evaluation of `learned`."),
    group_by: str = typer.Option("none", "--group-by", help="subject | dataset | none"),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the cost-quality curve: PNG, or the format its suffix names."
    ),
    seed: int = SeedOption,
    cache_dir: Path | None = CacheOption,
    train_only: list[str] = typer.Option(
        [],
        "--train-only",
        help="Dataset (row `dataset`) always trained on and never scored; `learned` only.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print metrics as one JSON object."),
) -> None:
    """APGR, CPT(50%), CPT(80%) and cost saved at 95% quality, against random and length.

    `--router learned` trains and scores out of fold (k-fold, grouped with --group-by);
    an artifact path or a named router is evaluated as is, on all rows.
    """
    if group_by not in GROUP_CHOICES:
        fail(f"--group-by must be one of {', '.join(GROUP_CHOICES)}")
    if folds < 2:
        fail("--folds must be at least 2")
    _check_router_name(router, "eval")
    require_extra_or_exit("routing")
    if plot is not None:
        plot = _plot_path(plot)
    _check_cache_dir(cache_dir)
    rows = _read(data)
    _say_unlabelled(rows)
    from smallfirst.errors import InvalidRequest
    from smallfirst.routing.data import labelled

    try:
        rows = labelled(rows)
    except InvalidRequest as exc:
        fail(f"{_names(data)}: {exc.message}")
    _check_train_only(train_only, rows, router)
    options = (folds, group_by, seed, tuple(train_only))
    scores, mode = _eval_scores(rows, router, options, cache_dir, as_json)
    rows = [row for row in rows if row.dataset not in train_only]
    report = _report(rows, scores, router, mode, plot)
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_report(report)


def _say_unlabelled(rows: list[RoutingRow]) -> None:
    """Rows without both scores (not labelled yet, or a judge that gave no rating) are left
    out of training and of the metrics; they were left out without a word."""
    left_out = [row for row in rows if not row.has_labels]
    if left_out and len(left_out) < len(rows):  # none labelled is an error, said later
        print(
            f"note: left out {counted(len(left_out), 'row')} without both weak.score and"
            f" strong.score (the first: {left_out[0].source})",
            file=sys.stderr,
        )


def _print_report(report: dict[str, Any]) -> None:
    from smallfirst.routing.eval import NO_GAP

    typer.echo(f"router {report['router']} ({report['mode']}), n={report['n']}")
    for name in ("apgr", "cpt50", "cpt80", "cost_saved_at_95"):
        typer.echo(
            f"  {name:17s} {_metric(report[name])}   random {_metric(report['random'][name])}"
            f"   length {_metric(report['length'][name])}"
        )
    if report["apgr"] is None:
        typer.echo("  " + NO_GAP.format(mean=report["weak_mean"]))
    for dataset, metrics in report.get("per_dataset", {}).items():
        typer.echo(
            f"  {dataset or '(no dataset)'}: apgr {_metric(metrics['apgr'])}"
            f"  cpt50 {_metric(metrics['cpt50'])}  cpt80 {_metric(metrics['cpt80'])}"
            + ("  (no gap: undefined)" if metrics["apgr"] is None else "")
        )


def _metric(value: float | None) -> str:
    return "   undef" if value is None else f"{value:8.4f}"


def _check_trainable(router: str) -> None:
    from smallfirst.routing.base import LEARNED_NAME, ROUTER_CLASSES

    if router in ROUTER_CLASSES:
        fail(f"router {router!r} has nothing to train; only `{LEARNED_NAME}` is trained")
    if router != LEARNED_NAME:
        fail(f"unknown router {router!r}; `router train` trains `{LEARNED_NAME}` only")


def _check_router_name(spec: str, command: str) -> None:
    """Fail before reading any data on a name that is neither a router nor a path; the
    list is what this command takes (`eval` also trains `learned` itself)."""
    from smallfirst.routing.base import LEARNED_NAME, ROUTER_CLASSES

    names = [*ROUTER_CLASSES, *([LEARNED_NAME] if command == "eval" else [])]
    if spec not in [*names, LEARNED_NAME] and not Path(spec).exists():
        fail(
            f"unknown router {spec!r}; `router {command}` takes {', '.join(names)} "
            "or an artifact directory written by `router train`"
        )


def _check_not_data(out: Path, data: list[Path]) -> None:
    """The scores replaced the rows they were made from."""
    for path in data:
        if same_file(out, path):
            fail(f"--out {out} is a --data file; give another file (it would be replaced)")


def _plot_path(plot: Path) -> Path:
    """The file the curve will be written to: PNG unless the name says another format."""
    from smallfirst.routing.eval import plot_path

    if plot.is_dir():
        fail(f"cannot write {plot}: it is a directory")
    try:
        path = plot_path(plot)
    except ValueError as exc:
        fail(f"--plot {plot}: {exc}")
    check_writable(path)
    return path


def _check_cache_dir(cache_dir: Path | None) -> None:
    """The embeddings are saved there once every prompt is embedded: a file of that name
    stopped the command with a traceback at the end, the embedding work lost."""
    if cache_dir is not None:
        check_writable(cache_dir, directory=True)


def _names(paths: list[Path]) -> str:
    return ", ".join(map(str, paths))


def _load(spec: str) -> Any:
    from smallfirst.errors import ConfigError
    from smallfirst.routing.base import load_router

    try:
        return load_router(spec)
    except ConfigError as exc:
        fail(str(exc))


def _check_train_only(train_only: list[str], rows: list[RoutingRow], router: str) -> None:
    from smallfirst.routing.base import LEARNED_NAME

    if not train_only:
        return
    if router != LEARNED_NAME:
        fail("--train-only needs --router learned (only it is trained here)")
    present = {row.dataset for row in rows}
    unknown = sorted(set(train_only) - present)
    if unknown:
        fail(f"--train-only {unknown[0]!r} is not a dataset of --data ({sorted(present)})")
    if present <= set(train_only):
        fail("--train-only names every dataset: no row is left to score")


def _eval_scores(
    rows: list[RoutingRow],
    router: str,
    options: tuple[int, str, int, tuple[str, ...]],
    cache_dir: Path | None,
    quiet: bool,
) -> tuple[list[float], str]:
    from smallfirst.routing.base import LEARNED_NAME

    folds, group_by, seed, train_only = options
    if router == LEARNED_NAME and not Path(router).exists():
        from smallfirst.errors import InvalidRequest
        from smallfirst.routing.crossval import out_of_fold_scores

        try:
            with progress_on_stderr("embedding prompts", len(rows), quiet) as advance:
                scores = out_of_fold_scores(
                    rows,
                    folds=folds,
                    group_by=group_by,
                    seed=seed,
                    cache_dir=cache_dir,
                    on_progress=advance,
                    train_only=train_only,
                )
        except InvalidRequest as exc:
            fail(exc.message)
        grouping = "random rows" if group_by == "none" else f"grouped by {group_by}"
        extra = f", always training on {', '.join(train_only)}" if train_only else ""
        return scores, f"out-of-fold, {folds} folds, {grouping}{extra}"
    chosen = _load(router)
    from smallfirst.routing.learned import LearnedRouter

    conversations = [row.messages for row in rows]
    if isinstance(chosen, LearnedRouter):
        with progress_on_stderr("scoring", len(rows), quiet) as advance:
            scores = chosen.score_batch(conversations, cache_dir=cache_dir, on_progress=advance)
        if not quiet:
            print(
                "note: a given artifact is evaluated as is (in-sample if trained on these rows)",
                file=sys.stderr,
            )
        return scores, "artifact as is"
    return chosen.score_batch(conversations), "as is (no training)"


def _only(name: str, rows: list[RoutingRow], *columns: list[float]) -> tuple[list[float], ...]:
    keep = [row.dataset == name for row in rows]
    return tuple([x for x, k in zip(column, keep, strict=True) if k] for column in columns)


def _report(
    rows: list[RoutingRow],
    scores: list[float],
    router: str,
    mode: str,
    plot: Path | None,
) -> dict[str, Any]:
    from smallfirst.routing.baselines import LengthRouter
    from smallfirst.routing.eval import evaluate_scores, plot_curves, random_baseline

    weak = [float(row.weak_score or 0.0) for row in rows]
    strong = [float(row.strong_score or 0.0) for row in rows]
    metrics, curve = evaluate_scores(scores, weak, strong)
    random_metrics, random_curve = random_baseline(weak, strong)
    length_scores = LengthRouter().score_batch([row.messages for row in rows])
    length_metrics, length_curve = evaluate_scores(length_scores, weak, strong)
    report: dict[str, Any] = {**metrics.as_dict(), "router": router, "mode": mode}
    report["random"] = random_metrics.as_dict()
    report["length"] = length_metrics.as_dict()
    datasets = sorted({row.dataset for row in rows})
    if len(datasets) > 1:  # one pooled curve mixes scales; each dataset's own ranking matters
        report["per_dataset"] = {
            name: evaluate_scores(*_only(name, rows, scores, weak, strong))[0].as_dict()
            for name in datasets
        }
    if plot is not None:  # the path was checked before the work, by `_plot_path`
        curves = {router: curve, "length": length_curve, "random (20 seeds)": random_curve}
        with replaced_in_one_step(plot) as aside:
            plot_curves(curves, aside, title=f"{router}: {mode}")
        report["plot"] = str(plot)
    return report
