"""What every `smallfirst` command shares: documented options."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from smallfirst import __version__
from smallfirst.cli import app


def _commands(command: Any, path: str = "smallfirst") -> list[tuple[str, Any]]:
    """Every command and group under `command` (typer's click may be its own copy)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, f"{path} {name}")
    return found


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`router train --seed` and `router eval --seed` had no help text."""
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 20
    bare = [
        f"{path} {param.opts[0]}"
        for path, command in commands
        for param in command.params
        if param.param_type_name == "option" and not param.help
    ]
    assert bare == []


def test_version_prints_the_version_and_runs_no_command() -> None:
    result = CliRunner().invoke(app, ["--version", "serve"])
    assert result.exit_code == 0
    assert result.output == f"smallfirst {__version__}\n"
