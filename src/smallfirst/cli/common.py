"""Helpers shared by the CLI commands: loading settings, one-line usage errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from smallfirst.config import Settings, load_settings
from smallfirst.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

# Piped or redirected, tables would be cut to 80 columns (rich's default off a terminal).
UNLIMITED_WIDTH = 10_000

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", envvar="SMALLFIRST_CONFIG", help="YAML config file (default: built-in)."
)


def output_console() -> Console:
    """Where commands print: the terminal's width on a terminal, whole lines elsewhere."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=UNLIMITED_WIDTH)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        fail(str(exc), code=1)


def check_routing_or_exit(settings: Settings) -> None:
    """The router loads and can meet the configured knobs, or exit 1 saying why."""
    from smallfirst.routing.base import check_routing

    try:
        check_routing(settings.routing)
    except ConfigError as exc:
        fail(f"routing: {exc}", code=1)


def missing_model_files(settings: Settings) -> list[str]:
    """Local models whose GGUF file is not there (the server would answer them with 503)."""
    from smallfirst.backends.llamacpp_engine import resolve_model_path
    from smallfirst.config import LlamaCppModel
    from smallfirst.errors import ModelUnavailable

    problems = []
    for index, model in enumerate(settings.models):
        if isinstance(model, LlamaCppModel):
            try:
                resolve_model_path(model.path)
            except ModelUnavailable as exc:
                problems.append(f"models.{index}.path ({model.id}): {exc.message}")
    return problems
