"""Where smallfirst keeps files it can make again (converted and installed models)."""

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
