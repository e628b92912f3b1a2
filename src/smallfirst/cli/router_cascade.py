"""`smallfirst router calibrate-cascade`: the cascade's confidence threshold from rows that
`router label` wrote for your own pair of models (they carry `weak_confidence`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import typer

from smallfirst.cli.common import fail, require_file


def calibrate_cascade(
    data: Path = typer.Option(..., "--data", help="Rows written by `router label`."),
    max_strong_share: float | None = typer.Option(
        None, "--max-strong-share", min=0.0, max=1.0, help="Escalate at most this share."
    ),
    min_quality: float | None = typer.Option(
        None,
        "--min-quality",
        min=0.0,
        max=1.0,
        help="Recover at least this share (PGR) of the weak -> strong quality gap.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Choose `routing.cascade.min_mean_logprob` for a target and show what it does."""
    from smallfirst.errors import ConfigError, InvalidRequest
    from smallfirst.routing.cascade import calibrate_cascade as calibrate
    from smallfirst.routing.data import read_jsonl

    if max_strong_share is None and min_quality is None:
        fail("give --max-strong-share, --min-quality or both")
    require_file(data)
    try:
        rows = [row for _, row in read_jsonl(data)]
        result = calibrate(rows, max_strong_share=max_strong_share, min_quality=min_quality)
    except InvalidRequest as exc:
        fail(exc.message)
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"{data}: not rows in the routing schema ({exc})")
    except ConfigError as exc:
        fail(f"{data}: {exc}")
    if as_json:
        typer.echo(json.dumps({k: _finite(v) for k, v in asdict(result).items()}))
        return
    ranking = (
        "APGR undefined (the weak and strong mean scores are equal)"
        if math.isnan(result.signal_apgr)
        else f"APGR {result.signal_apgr:.3f} (random 0.5)"
    )
    pgr = "undefined" if math.isnan(result.pgr) else f"{result.pgr:.2f}"
    typer.echo(
        f"on {result.rows} rows: escalates {result.escalated_share:.1%}, quality "
        f"{result.quality:.3f} (PGR {pgr}); the weak model's confidence ranks rows at {ranking}"
    )
    typer.echo("routing:\n  cascade:\n    min_mean_logprob: " + _yaml(result.min_mean_logprob))


def _finite(value: float | int) -> float | int | None:
    """JSON has no inf (never escalate) nor nan (an undefined APGR): null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _yaml(value: float) -> str:
    return "-.inf  # never escalate" if math.isinf(value) else repr(value)
