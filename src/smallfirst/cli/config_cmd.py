"""`smallfirst config check [FILE]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from smallfirst.cli.common import (
    check_routing_or_exit,
    fail,
    missing_model_files,
    settings_or_exit,
)

app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)


@app.command("check")
def check(
    file: Path | None = typer.Argument(None, help="YAML config (default: built-in defaults)."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved config as JSON."),
) -> None:
    """Validate a config file; exit 1 naming the key and file when it is wrong."""
    settings = settings_or_exit(file)
    check_routing_or_exit(settings)
    missing = missing_model_files(settings)
    if missing:
        fail(f"{file or '<built-in defaults>'}: " + "; ".join(missing), code=1)
    if as_json:
        typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
        return
    typer.echo(f"{file or '<built-in defaults>'}: OK")
    for model in settings.models:
        typer.echo(f"  {model.id:<24} tier={model.tier:<7} backend={model.backend}")
