"""`smallfirst router label`: label a prompt set with your own weak and strong models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from smallfirst.cli.common import (
    CONFIG_OPTION,
    INTERRUPTED,
    check_writable,
    counted,
    fail,
    progress_on_stderr,
    require_file,
    settings_or_exit,
    stops_as_interrupt,
)
from smallfirst.paths import same_file

if TYPE_CHECKING:
    from smallfirst.config import Settings
    from smallfirst.routing.data import RoutingRow
    from smallfirst.routing.label import LabelJob


def label(
    data: Path = typer.Option(..., "--data", help="JSONL rows with `id` and `messages`."),
    weak: str = typer.Option(..., "--weak", help="Model id of the cheap tier."),
    strong: str = typer.Option(..., "--strong", help="Model id of the strong tier."),
    judge: str | None = typer.Option(None, "--judge", help="Model id that rates answers 1-10."),
    reference: bool = typer.Option(
        False,
        "--reference",
        help="Score against each row's `reference`: its last number, option letter or words.",
    ),
    out: Path = typer.Option(..., "--out", help="Output JSONL (appended; reruns resume)."),
    concurrency: int = typer.Option(4, min=1, max=64, help="Rows labelled at once."),
    max_tokens: int = typer.Option(512, min=1, help="Answer length limit for both models."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run both models on each prompt and score the answers (routing-schema rows)."""
    from smallfirst.routing.label import LabelJob, resume_problem

    if (judge is None) == (not reference):
        fail("give exactly one of --judge MODEL or --reference")
    require_file(data)
    check_writable(out)
    if same_file(out, data):  # it was read as all labelled: nothing was done
        fail(f"--out {out} is the --data file; give another file (labels are appended to it)")
    rows = _read_prompts(data, needs_reference=reference)
    job = LabelJob(weak=weak, strong=strong, judge=judge, max_tokens=max_tokens)
    settings = settings_or_exit(config)
    for model in filter(None, (weak, strong, judge)):
        if settings.model(model) is None:
            fail(f"model {model!r} is not in the config; see `smallfirst models`")
    with _writing_alone(out), stops_as_interrupt():
        _read_labels(out)  # a file to resume must be one this command wrote
        if (problem := resume_problem(out, rows, job)) is not None:
            fail(problem)
        labelled = _label_all(settings, rows, out, job, concurrency)
    typer.echo(f"labelled {counted(labelled, 'new row')} ({len(rows) - labelled} already in {out})")
    typer.echo(_outcomes(_read_labels(out)))


@contextmanager
def _writing_alone(out: Path) -> Iterator[None]:
    """Hold `out` for this run: two runs on one file (one started again while the first
    still ran) each labelled every row, and with other models the file mixed their labels.
    A file this run made and left empty is removed."""
    from smallfirst.paths import exclusive_lock

    made = not out.exists()

    def refuse() -> NoReturn:
        fail(f"another `router label` is writing to {out}: wait for it, or give another --out")

    try:
        with exclusive_lock(out, on_wait=refuse):
            yield
    finally:
        if made and out.exists() and not out.stat().st_size:
            out.unlink()


def _label_all(
    settings: Settings, rows: list[dict[str, Any]], out: Path, job: LabelJob, concurrency: int
) -> int:
    """The rows not yet in `out` labelled and appended to it; exits on a failure or a stop."""
    from smallfirst.errors import SmallfirstError
    from smallfirst.routing.label import label_file
    from smallfirst.service import Gateway

    async def run() -> int:
        gateway = Gateway.from_settings(settings)
        try:
            # on stderr: on stdout, piped, its last frame came before the summary
            with progress_on_stderr("labelling", len(rows), False) as advance:
                return await label_file(gateway, rows, out, job, concurrency, lambda: advance(1))
        finally:
            await gateway.aclose()

    try:
        return asyncio.run(run())
    except SmallfirstError as exc:
        fail(exc.message + _kept(out), code=1)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP (`stops_as_interrupt`)
        fail("interrupted" + _kept(out), code=INTERRUPTED)


def _kept(out: Path) -> str:
    has_rows = out.exists() and out.stat().st_size > 0
    return f" (the rows labelled so far are in {out}: rerun to resume)" if has_rows else ""


def _read_prompts(data: Path, *, needs_reference: bool) -> list[dict[str, Any]]:
    """Every row, checked before any model runs; exit 2 naming the line at fault."""
    from smallfirst.errors import InvalidRequest
    from smallfirst.routing.data import read_jsonl
    from smallfirst.routing.label import prompt_problem

    rows = []
    lines: dict[str, int] = {}  # id -> its line: resuming goes by id
    try:
        for number, row in read_jsonl(data):
            problem = prompt_problem(row, needs_reference=needs_reference)
            if problem is None and str(row["id"]) in lines:
                problem = f"id {row['id']!r} is also on line {lines[str(row['id'])]}"
            if problem is not None:
                fail(f"{data}:{number}: {problem}")
            lines[str(row["id"])] = number
            rows.append(row)
    except InvalidRequest as exc:
        fail(exc.message)
    if not rows:
        fail(f"{data}: no rows to label")
    return rows


def _read_labels(out: Path) -> list[RoutingRow]:
    from smallfirst.errors import InvalidRequest
    from smallfirst.routing.data import read_rows

    try:
        return read_rows(out)
    except InvalidRequest as exc:
        fail(f"--out: {exc.message}")


def _outcomes(rows: list[RoutingRow]) -> str:
    """What the labels say about the pair, before any router is trained on them."""
    scores = [(r.weak_score, r.strong_score) for r in rows]
    pairs = [(w, s) for w, s in scores if w is not None and s is not None]
    unrated = (
        f"; {counted(len(rows) - len(pairs), 'row')} without a score (the judge gave no rating:"
        " router train and eval leave them out)"
        if len(pairs) < len(rows)
        else ""
    )
    if not pairs:
        return "no rows with both scores" + unrated
    weak = sum(w for w, _ in pairs) / len(pairs)
    strong = sum(s for _, s in pairs) / len(pairs)
    better = sum(s > w for w, s in pairs)
    worse = sum(s < w for w, s in pairs)
    return (
        f"{len(pairs)} rows: weak mean score {weak:.3f}, strong {strong:.3f}; the strong "
        f"model did better on {better}, worse on {worse}, the same on "
        f"{len(pairs) - better - worse}{unrated}"
    )
