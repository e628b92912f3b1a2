"""`smallfirst privacy ...`: scan a text for PII, evaluate the detector on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from smallfirst.cli.common import (
    argument_text,
    check_writable,
    fail,
    output_console,
    progress_on_stderr,
    read_error,
    require_extra_or_exit,
    require_file,
    stdin_text,
)
from smallfirst.paths import replaced_in_one_step, same_file

app = typer.Typer(help="PII detection: scan a text, evaluate the detector.", no_args_is_help=True)


@app.command()
def scan(
    text: str = typer.Argument(..., help="Text to scan; '-' reads standard input."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (no values)."),
    threshold: float = typer.Option(0.4, "--threshold", min=0.0, max=1.0, help="Min score."),
) -> None:
    """Show the PII findings in TEXT: type, span and score."""
    from smallfirst.privacy.detect import PiiDetector

    require_extra_or_exit("privacy")
    text = stdin_text() if text == "-" else argument_text(text)
    findings = PiiDetector(score_threshold=threshold).inspect(text)
    if as_json:
        payload = {
            "findings": [
                {"entity_type": f.entity_type, "start": f.start, "end": f.end, "score": f.score}
                for f in findings
            ],
            "counts": _counts(f.entity_type for f in findings),
        }
        typer.echo(json.dumps(payload))
        return
    from rich.table import Table

    table = Table(title=f"{len(findings)} finding(s)")
    for column in ("type", "start", "end", "score", "value (local display only)"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.entity_type, str(f.start), str(f.end), f"{f.score:.2f}", f.value_in(text))
    output_console().print(table)


@app.command("eval")
def evaluate_command(
    data: Path = typer.Option(..., "--data", help="JSON list in presidio-research's schema."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    predictions_out: Path | None = typer.Option(
        None,
        "--predictions-out",
        help="Write one JSON line of predicted spans per sample to this file.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N samples."),
    threshold: float = typer.Option(0.4, "--threshold", min=0.0, max=1.0, help="Min score."),
) -> None:
    """Precision, recall, F1 and F2 per entity type and micro-averaged, plus latency."""
    from smallfirst.privacy import eval as privacy_eval
    from smallfirst.privacy.detect import PiiDetector

    require_extra_or_exit("privacy")
    require_file(data)
    if predictions_out == Path("-"):  # it made a file named "-"
        fail("--predictions-out: name a file; standard output carries the report")
    if predictions_out is not None:
        check_writable(predictions_out)
        if same_file(predictions_out, data):
            fail(f"--predictions-out {predictions_out} is the --data file; give another file")
    try:
        samples = privacy_eval.load_samples(data)
    except ValueError as error:
        fail(str(error).splitlines()[0])
    except OSError as error:  # unreadable (permissions): it was a traceback
        fail(read_error(data, error))
    if not samples:
        fail(f"{data}: no samples")
    if limit is not None:
        samples = samples[:limit]

    # Every sample is timed as a first sight (a repeated text would be remembered).
    detector = PiiDetector(score_threshold=threshold, recent_texts=0)
    detector.warm_up()  # model loading is not part of the per-prompt latency
    lines: list[str] = []

    def predict(sample_text: str) -> list[privacy_eval.Span]:
        return [
            privacy_eval.Span(f.entity_type, f.start, f.end) for f in detector.inspect(sample_text)
        ]

    with progress_on_stderr("scoring", len(samples), quiet=as_json) as advance:

        def record(index: int, spans: list[privacy_eval.Span]) -> None:
            row = [{"entity_type": s.entity_type, "start": s.start, "end": s.end} for s in spans]
            lines.append(json.dumps({"index": index, "spans": row}))
            advance(1)

        report = privacy_eval.evaluate(samples, predict, on_prediction=record).as_dict()
    report["data"] = str(data)
    if predictions_out is not None:  # a stop while it was written left half a file
        with replaced_in_one_step(predictions_out) as aside:
            aside.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_report(report)


def _counts(kinds: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = output_console()
    table = Table(title=f"token-level (headline), {report['samples']} samples")
    for column in ("type", "precision", "recall", "F1", "F2", "support"):
        table.add_column(column, justify="right" if column != "type" else "left")
    rows = [*report["token"]["per_type"].items(), ("micro", report["token"]["micro"])]
    for kind, s in rows:
        table.add_row(
            kind,
            *(f"{s[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
            str(s["support"]),
        )
    console.print(table)
    for name in ("span_overlap", "span_exact"):
        m = report[name]["micro"]
        console.print(
            f"{name} micro: P={m['precision']:.3f} R={m['recall']:.3f} "
            f"F1={m['f1']:.3f} F2={m['f2']:.3f}"
        )
    latency = report["latency_ms"]
    console.print(
        f"latency per prompt: p50={latency['p50']:.1f} ms p95={latency['p95']:.1f} ms "
        f"(mean {latency['mean_chars']} chars)"
    )
    mapping = ", ".join(f"{k}->{v}" for k, v in report["label_mapping"].items() if k != v)
    console.print(f"label mapping: {mapping}; others unchanged")
    console.print(f"not evaluated (gold tokens count as O): {', '.join(report['not_evaluated'])}")
