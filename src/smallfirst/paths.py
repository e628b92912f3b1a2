"""Where smallfirst keeps files it can make again (converted and installed models), and why
a folder it is given cannot be used."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$SMALLFIRST_CACHE_DIR`, else `$XDG_CACHE_HOME/smallfirst`, else `~/.cache/smallfirst`."""
    explicit = os.environ.get("SMALLFIRST_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smallfirst"


def broken_link_in(path: Path) -> str | None:
    """Why `path` can be neither made nor used: it, or a folder above it, is a symlink whose
    target does not exist (say a disk that is not mounted), where `mkdir` fails with
    "File exists". None when there is no such link."""
    for part in (path, *path.parents):
        if part.exists():  # every folder above it resolves too
            return None
        if part.is_symlink():
            name = "it" if part == path else str(part)
            return f"{name} is a symlink to {os.path.realpath(part)}, which does not exist"
    return None
