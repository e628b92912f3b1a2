"""docs/configuration.md has a row for every setting, with the default the code has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from smallfirst.config import BACKENDS, DEFAULT_BACKEND, Settings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\|\s*`(?P<key>[^`]+)`\s*\|(?P<default>[^|]*)\|")
_ONE_VALUE = re.compile(r"`([^`]+)`")
REQUIRED = "required"


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`BaselineConfig | None` -> BaselineConfig), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _settings(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """(dotted key as the reference spells it, field) for every setting: a model's keys under
    `models[].`, for each backend; a mapping of sections (`rag.collections`) under `<name>.`."""
    for name, field in model.model_fields.items():
        key = prefix + name
        if model is Settings and name == "models":
            for backend in BACKENDS.values():
                yield from _settings(backend, "models[].")
        elif get_origin(field.annotation) is dict:
            named = _section(get_args(field.annotation)[1])
            if named is None:
                yield key, field
            else:
                yield from _settings(named, key + ".<name>.")
        elif (section := _section(field.annotation)) is not None:
            yield from _settings(section, key + ".")
        else:
            yield key, field


def _defaults() -> dict[str, list[Any]]:
    """Each key's default as YAML reads it (REQUIRED when it has none), one per backend."""
    defaults: dict[str, list[Any]] = {}
    for key, field in _settings(Settings):
        value = (
            REQUIRED
            if field.is_required()
            else to_jsonable_python(field.get_default(call_default_factory=True))
        )
        defaults.setdefault(key, []).append(value)
    # each backend's class has itself as default; an entry without `backend` gets this one
    defaults["models[].backend"] = [DEFAULT_BACKEND]
    return defaults


def _reference_rows() -> dict[str, str]:
    """Key -> the default column, from the reference's table rows."""
    rows = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            rows[match["key"]] = match["default"].strip()
    return rows


def test_every_setting_has_a_row_in_the_reference() -> None:
    missing = sorted(set(_defaults()) - set(_reference_rows()))
    assert not missing, (
        f"settings not documented in {REFERENCE.relative_to(REFERENCE.parents[1])}:"
        f" {', '.join(missing)}. Add a row `| `key` | default | what it does |` to the"
        " table of the key's section there (models: `models[].key`)."
    )


def test_the_reference_names_no_setting_that_is_gone() -> None:
    unknown = sorted(set(_reference_rows()) - set(_defaults()))
    assert not unknown, f"rows of {REFERENCE.name} name no setting: {', '.join(unknown)}"


def test_the_reference_defaults_are_the_code_defaults() -> None:
    """A default column of one backticked YAML value (or `required`) says what the code has;
    other defaults are described in words, and not checked."""
    defaults, wrong = _defaults(), []
    for key, cell in _reference_rows().items():
        value = _ONE_VALUE.fullmatch(cell)
        if key not in defaults or (value is None and cell != REQUIRED):
            continue
        documented = REQUIRED if value is None else yaml.safe_load(value[1])
        if any(documented != actual for actual in defaults[key]):
            wrong.append(f"{key}: documented {cell}, the code has {defaults[key]}")
    assert not wrong, f"defaults in {REFERENCE.name} that differ from config.py:\n" + "\n".join(
        wrong
    )
