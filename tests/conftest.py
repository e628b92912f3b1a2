"""Fixtures for the whole suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _close_llama_cpp_null_files() -> Iterator[None]:
    """llama_cpp._utils opens /dev/null twice at import and never closes it: at exit that is a
    ResourceWarning for each, printed after the summary. Tests that load a model in-process
    import it; close the files once the session is over."""
    yield
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        null_file = getattr(utils, name, None)
        if null_file is not None:
            null_file.close()
