"""The `smallfirst` command: `smallfirst <noun> <verb>`, like git and simonw/llm.

Sub-command modules keep heavy imports inside their functions so `--help` stays fast.
"""

from __future__ import annotations

import errno
import faulthandler
import sys
from contextlib import suppress

import typer

from smallfirst import __version__
from smallfirst.cli import (
    config_cmd,
    models,
    privacy,
    rag,
    router,
    router_cascade,
    router_label,
    serve,
    stats,
)

app = typer.Typer(
    name="smallfirst",
    help="Local-first hybrid LLM gateway: small local models first, the cloud only when needed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
stats.register(app)
app.add_typer(config_cmd.app, name="config")
app.add_typer(models.app, name="models")
router.app.command("label")(router_label.label)
router.app.command("calibrate-cascade")(router_cascade.calibrate_cascade)
app.add_typer(router.app, name="router")
app.add_typer(privacy.app, name="privacy")
app.add_typer(rag.app, name="rag")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"smallfirst {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Local-first hybrid LLM gateway."""


# Errors of writing that are the machine's state (a full disk, /dev/full), not a fault.
_NO_ROOM_TO_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def main() -> None:
    # A crash in native code (llama.cpp, onnxruntime) killed the process without a word (QA:
    # an AMX fault in llama.cpp): now the Python stack of each thread goes to stderr.
    with suppress(RuntimeError, ValueError, OSError):  # no stderr to write to (`2>&-`)
        faulthandler.enable()
    try:
        app()
    except OSError as exc:
        if exc.errno not in _NO_ROOM_TO_WRITE:
            raise
        # one line, as for a closed pipe (the only one typer spares its traceback)
        where = f" ({exc.filename})" if exc.filename else ""
        with suppress(OSError):
            sys.stderr.write(f"Error: cannot write{where}: {exc.strerror}\n")
        raise SystemExit(1) from None
