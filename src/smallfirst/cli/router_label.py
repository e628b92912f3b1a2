"""`smallfirst router label`: label a prompt set with your own weak and strong models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from smallfirst.cli.common import CONFIG_OPTION, fail, settings_or_exit


def label(
    data: Path = typer.Option(..., "--data", help="JSONL rows with `id` and `messages`."),
    weak: str = typer.Option(..., "--weak", help="Model id of the cheap tier."),
    strong: str = typer.Option(..., "--strong", help="Model id of the strong tier."),
    judge: str | None = typer.Option(None, "--judge", help="Model id that rates answers 1-10."),
    reference: bool = typer.Option(False, "--reference", help="Score by exact match."),
    out: Path = typer.Option(..., "--out", help="Output JSONL (appended; reruns resume)."),
    concurrency: int = typer.Option(4, min=1, max=64, help="Rows labelled at once."),
    max_tokens: int = typer.Option(512, min=1, help="Answer length limit for both models."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run both models on each prompt and score the answers (routing-schema rows)."""
    from rich.progress import Progress

    from smallfirst.routing.label import LabelJob, label_file
    from smallfirst.service import Gateway

    if (judge is None) == (not reference):
        fail("give exactly one of --judge MODEL or --reference")
    if not data.is_file():
        fail(f"no such file: {data}")
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    if reference and any("reference" not in r for r in rows):
        fail("--reference needs a `reference` field on every row")
    settings = settings_or_exit(config)
    for model in filter(None, (weak, strong, judge)):
        if settings.model(model) is None:
            fail(f"model {model!r} is not in the config; see `smallfirst models`")
    job = LabelJob(weak=weak, strong=strong, judge=judge, max_tokens=max_tokens)

    async def run() -> int:
        gateway = Gateway.from_settings(settings)
        try:
            with Progress() as progress:
                task = progress.add_task("labelling", total=len(rows))
                return await label_file(
                    gateway, rows, out, job, concurrency, lambda: progress.advance(task)
                )
        finally:
            await gateway.aclose()

    labelled = asyncio.run(run())
    typer.echo(f"labelled {labelled} new rows ({len(rows) - labelled} already in {out})")
    typer.echo(_outcomes([json.loads(line) for line in out.read_text().splitlines() if line]))


def _outcomes(rows: list[dict[str, Any]]) -> str:
    """What the labels say about the pair, before any router is trained on them."""
    scores = [(float(r["weak"]["score"]), float(r["strong"]["score"])) for r in rows]
    if not scores:
        return "no rows"
    weak = sum(w for w, _ in scores) / len(scores)
    strong = sum(s for _, s in scores) / len(scores)
    better = sum(s > w for w, s in scores)
    worse = sum(s < w for w, s in scores)
    return (
        f"{len(scores)} rows: weak mean score {weak:.3f}, strong {strong:.3f}; the strong "
        f"model did better on {better}, worse on {worse}, the same on "
        f"{len(scores) - better - worse}"
    )
