"""Backend name -> factory. Adding an engine = one module + one line here."""

from __future__ import annotations

from collections.abc import Callable

from smallfirst.backends.base import Backend
from smallfirst.config import ModelConfig, Settings


def build_backends(settings: Settings) -> dict[str, Backend]:
    """One backend per configured model, keyed by model id. Nothing is loaded yet."""
    from smallfirst.backends.llamacpp import LocalModelPool

    pool = LocalModelPool(settings.local.memory_budget_mb * 1024 * 1024)
    return {m.id: _FACTORIES[m.backend](m, pool) for m in settings.models}


def _llamacpp(config: ModelConfig, pool: object) -> Backend:
    from smallfirst.backends.llamacpp import LlamaCppBackend, LocalModelPool
    from smallfirst.config import LlamaCppModel

    assert isinstance(config, LlamaCppModel)
    assert isinstance(pool, LocalModelPool)
    return LlamaCppBackend(config, pool)


def _openai_compat(config: ModelConfig, pool: object) -> Backend:
    from smallfirst.backends.openai_compat import OpenAICompatBackend
    from smallfirst.config import OpenAICompatModel

    assert isinstance(config, OpenAICompatModel)
    return OpenAICompatBackend(config)


def _fake(config: ModelConfig, pool: object) -> Backend:
    from smallfirst.backends.fake import FakeBackend
    from smallfirst.config import FakeModel

    assert isinstance(config, FakeModel)
    return FakeBackend(config)


_FACTORIES: dict[str, Callable[[ModelConfig, object], Backend]] = {
    "llamacpp": _llamacpp,
    "openai_compat": _openai_compat,
    "fake": _fake,
}
