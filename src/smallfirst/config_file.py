"""Reading the config: a YAML file (its relative paths read from its folder), then the
`SMALLFIRST__` environment overrides, validated into `Settings` with errors that name each
key as the file (or the variable) spells it. The schema itself is `config.py`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from smallfirst.catalog import INSTALLED_PREFIX
from smallfirst.config import (
    BACKENDS,
    BUILT_IN,
    BUNDLED_PREFIX,
    DEFAULT_BACKEND,
    ENV_PREFIX,
    Settings,
    setting_variable,
)
from smallfirst.config_section import KeyedProblems
from smallfirst.errors import ConfigError
from smallfirst.routing.base import names_a_router


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (or the built-in default), apply env overrides, validate loudly."""
    source = str(path) if path else BUILT_IN
    raw: dict[str, Any] = {}
    if path:
        try:
            loaded = _parse_yaml(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: file not found") from exc
        except _DuplicateKey as exc:
            raise ConfigError(f"{source}: {exc.problem}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
        raw = loaded or {}
        _read_paths_beside(raw, Path(path).absolute().parent)
    overrides = _apply_env_overrides(raw, os.environ if env is None else env)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc, overrides)) from exc
    settings._source, settings._overrides = source, overrides
    return settings


def _read_paths_beside(raw: dict[str, Any], folder: Path) -> None:
    """Relative paths in a config file are read from the file's folder, as docker compose reads
    its own: `serve --config /etc/smallfirst/gateway.yaml` finds `models/x.gguf` beside the file
    whatever the working directory (a systemd unit starts in /). Environment overrides are
    applied after this, so theirs stay relative to the working directory, as in a shell."""
    _rebase(raw, "data_dir", folder)
    routing = raw.get("routing")
    if isinstance(routing, dict) and not names_a_router(str(routing.get("router", "rules"))):
        _rebase(routing, "router", folder)
    models = raw.get("models")
    for model in models if isinstance(models, list) else []:
        if isinstance(model, dict):
            _rebase(model, "path", folder)
            _rebase(model, "lora_path", folder)


def _rebase(section: dict[str, Any], key: str, folder: Path) -> None:
    """`section[key]` read from `folder` if it is a relative path; a model's `bundled:` and
    `installed:` names, `~/...` and absolute paths stay as they are."""
    value = section.get(key)
    if not isinstance(value, str) or not value:  # "" is no path: validation says so
        return
    if value.startswith(("~", BUNDLED_PREFIX, INSTALLED_PREFIX)):
        return
    if not Path(value).is_absolute():
        section[key] = str(folder / value)


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys: a second `models:` would silently replace
    the first. Here it is an error naming the key and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class says why such a key is refused
            line = key_node.start_mark.line + 1
            if key in first_lines:
                problem = f"duplicate key {key!r} at line {line} (first at line {first_lines[key]})"
                raise _DuplicateKey(problem=problem, problem_mark=key_node.start_mark)
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except RecursionError as exc:  # a traceback, as was a number of thousands of digits
        raise yaml.YAMLError("nested too deeply to read") from exc
    except ValueError as exc:  # Python's limit on an integer's digits
        raise yaml.YAMLError(str(exc)) from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, and where, on one line: its own message took six, quoting
    the text and calling the file "<unicode string>"."""
    if not isinstance(exc, yaml.MarkedYAMLError) or not exc.problem:
        return str(exc).splitlines()[0]
    mark, context = exc.problem_mark, exc.context
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    if context and exc.context_mark:
        context += f" from line {exc.context_mark.line + 1}"
    return where + exc.problem + (f" ({context})" if context else "")


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """`SMALLFIRST__SERVER__PORT=9000` sets server.port; values are parsed as YAML scalars.
    Returns dotted key -> the variable that set it, so errors can name the variable."""
    overrides: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            _refuse_one_underscore(name)
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:  # it was left out without a word
            raise ConfigError(f"environment {name}: names no setting (SMALLFIRST__SECTION__KEY)")
        if len(keys) > 1 and keys[0] == "models":
            raise ConfigError(
                f"environment {name}: the models are a list, not a section; change them in the"
                " config file (or set SMALLFIRST__MODELS to the whole list as YAML)"
            )
        node = _section_at(raw, keys[:-1], name)
        try:
            node[keys[-1]] = _parse_yaml(value)
        except yaml.YAMLError as exc:
            problem = _yaml_problem(exc)
            raise ConfigError(f"environment {name}: not a YAML value ({problem})") from exc
        overrides[".".join(keys)] = name
    return overrides


def _section_at(raw: dict[str, Any], keys: list[str], variable: str) -> dict[str, Any]:
    """The section (or mapping) of `raw` that `keys` lead to, made where missing. A key that
    holds a value, not keys, is refused here: `SMALLFIRST__SERVER__PORT__X` made `port` a
    mapping, and validation said port should be an integer."""
    node = raw
    schema: type[BaseModel] | None = Settings  # None: in a mapping's value, or an unknown key
    for depth, key in enumerate(keys):
        field = schema.model_fields.get(key) if schema else None
        if field is not None and not _holds_keys(field.annotation):
            setting = ENV_PREFIX + "__".join(keys[: depth + 1]).upper()
            raise ConfigError(
                f"environment {variable}: {key!r} is a setting, not a section ({setting} sets it)"
            )
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"environment {variable}: {key!r} is not a section")
        node = child
        known = None if field is None else field.annotation
        schema = None if known is None or _a_mapping(known) else _section_type(known)
    return node


def _refuse_one_underscore(name: str) -> None:
    """`SMALLFIRST_DATA_DIR` (as `SMALLFIRST_CONFIG` is spelled) was ignored without a word,
    and the data went to the default data dir. Names that spell no setting are left alone:
    an upstream's key may well be in one (`api_key_env: SMALLFIRST_LOCAL_API_KEY`)."""
    rest = name.removeprefix("SMALLFIRST_")
    if rest == name:
        return
    keys = _setting_keys(rest.lower().split("_"), Settings)
    if keys is None:
        return
    raise ConfigError(
        f"environment {name}: settings are read from SMALLFIRST__ variables, with two"
        f" underscores: {ENV_PREFIX}{'__'.join(keys).upper()}"
    )


def _setting_keys(words: list[str], section: type[BaseModel]) -> list[str] | None:
    """The keys of a setting that `words` spell (["server", "api", "keys"] -> server.api_keys)
    in `section`, or None: keys hold underscores too, so each split is tried."""
    for end in range(1, len(words) + 1):
        field = section.model_fields.get("_".join(words[:end]))
        if field is None:
            continue
        if end == len(words):
            return ["_".join(words)]
        inner = _section_type(field.annotation)
        rest = None if inner is None else _setting_keys(words[end:], inner)
        if rest is not None:
            return ["_".join(words[:end]), *rest]
    return None


def _holds_keys(annotation: Any) -> bool:
    """Whether a field holds keys a variable may set one by one: a section, or a mapping
    (`SMALLFIRST__PRIVACY__TIER_POLICY__CLOUD`)."""
    return _a_mapping(annotation) or _section_type(annotation) is not None


def _a_mapping(annotation: Any) -> bool:
    """Whether a field holds a mapping (`rag.collections`), whose keys the schema does not
    name: a collection may be called `private`."""
    return any(get_origin(kind) is dict for kind in (annotation, *get_args(annotation)))


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The section a field holds (`BaselineConfig | None` -> BaselineConfig), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _describe(source: str, exc: ValidationError, overrides: Mapping[str, str]) -> str:
    """One line per error: where its value came from (the env variable that set its key,
    else the file), the key as the file spells it, the problem."""
    lines = []
    for key, problem in _problems(exc.errors()):
        variable = setting_variable(key, overrides)
        lines.append(f"{f'environment {variable}' if variable else source}: {key}: {problem}")
    return "\n".join(lines)


def _problems(errors: list[ErrorDetails]) -> Iterator[tuple[str, str]]:
    """(key as the file spells it, problem) for each of pydantic's errors."""
    for error in errors:
        loc, backend = _without_backend(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, KeyedProblems):
            yield from ((_dotted((*loc, key)), problem) for key, problem in cause.problems)
        elif error["type"] == "union_tag_invalid":
            tag, known = error.get("ctx", {}).get("tag"), ", ".join(BACKENDS)
            yield _dotted((*loc, "backend")), f'unknown backend "{tag}" (backends: {known})'
        elif error["type"] == "extra_forbidden":
            yield _dotted(loc), _unknown_key(str(loc[-1]), backend)
        elif error["type"] == "value_error" and cause is not None:
            yield _dotted(loc), str(cause)  # without pydantic's "Value error, "
        elif error["type"] == "path_type":  # "Input is not a valid path for <class '...'>"
            yield _dotted(loc), "should be a path" + _empty_said(error)
        else:
            yield _dotted(loc), error["msg"] + _empty_said(error)


def _empty_said(error: ErrorDetails) -> str:
    """`SMALLFIRST__SERVER__HOST=` (and `host:` with nothing after it) is null to YAML: "Input
    should be a valid string" alone does not say that the value was empty."""
    return ", not empty" if error["type"] != "missing" and error.get("input", "") is None else ""


def _without_backend(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str | None]:
    """`models.0.llamacpp.path` -> `models.0.path`, "llamacpp": pydantic puts the backend
    (the union's tag) in the location, where the file has no such key."""
    if len(loc) > 2 and loc[0] == "models" and isinstance(loc[1], int) and loc[2] in BACKENDS:
        return (*loc[:2], *loc[3:]), str(loc[2])
    return loc, None


def _unknown_key(key: str, backend: str | None) -> str:
    """A remote model written without `backend: openai_compat` is read as a local one."""
    elsewhere = [b for b, cls in BACKENDS.items() if b != backend and key in cls.model_fields]
    if backend is None or not elsewhere:
        return "unknown key"
    default = " (the default)" if backend == DEFAULT_BACKEND else ""
    return f"unknown key for backend {backend}{default}; {key} needs backend: " + " or ".join(
        elsewhere
    )


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "<top>"
