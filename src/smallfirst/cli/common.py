"""Helpers shared by the CLI commands: loading settings, one-line usage errors, checking
that inputs can be read and outputs written before any long work starts."""

from __future__ import annotations

import io
import sys
import tempfile
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


class _TrimmedStdout(io.StringIO):
    """Standard output with each line's trailing spaces cut: rich pads every cell of a table
    to its column's width, and the last column's padding would end every line."""

    def __init__(self) -> None:
        super().__init__()
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return sys.stdout.encoding or "utf-8"

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            sys.stdout.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:  # a print that ended without a newline: nothing more is coming
            sys.stdout.write(self._partial)
            self._partial = ""
        sys.stdout.flush()


def output_console() -> Console:
    """Where commands print: the terminal's width on a terminal; elsewhere whole lines, each
    as wide as its content (tables must not `expand` there: they would fill the width)."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(file=_TrimmedStdout(), width=UNLIMITED_WIDTH)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        fail(str(exc), code=1)
    except (OSError, UnicodeDecodeError) as exc:  # a directory, unreadable, or not text
        fail(read_error(path or Path("."), exc), code=1)


def read_error(path: Path, exc: OSError | UnicodeDecodeError) -> str:
    """One line saying why `path` could not be read."""
    if isinstance(exc, UnicodeDecodeError):
        return f"{path}: not UTF-8 text (byte {exc.start})"
    return f"cannot read {path}: {exc.strerror or exc}"


def require_file(path: Path, what: str = "file") -> None:
    """Exit 2 unless `path` is an existing file (not a directory)."""
    if path.is_dir():
        fail(f"{path} is a directory, not a {what}")
    if not path.is_file():
        fail(f"no such {what}: {path}")


def check_writable(path: Path, *, directory: bool = False) -> None:
    """Exit 2 now, before any long work, if `path` (a file; a folder with `directory`) could
    not be written later. Missing parent folders are fine: the commands create them."""
    problem = _write_problem(path, directory=directory)
    if problem is not None:
        fail(f"cannot write {path}: {problem}")


def _write_problem(path: Path, *, directory: bool) -> str | None:
    if path.is_dir() and not directory:
        return "it is a directory"
    if path.exists() and not path.is_dir() and directory:
        return "it is a file, not a directory"
    existing = path if path.exists() else _nearest_existing(path.parent)
    if existing != path and not existing.is_dir():
        return f"{existing} is not a directory"
    try:  # running as root, permission bits say nothing: try it
        if existing.is_dir():
            with tempfile.TemporaryFile(dir=existing):
                pass
        else:
            with existing.open("ab"):
                pass
    except OSError as exc:
        return f"cannot create files in {existing} ({exc.strerror or exc})"
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
