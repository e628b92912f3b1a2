"""The penalties of a local model's sampler chain (`llamacpp_sampling.sampler_for`), read
from a recording stand-in for llama-cpp-python's `LlamaSampler`."""

from __future__ import annotations

from typing import Any

import pytest

from smallfirst.backends.llamacpp_sampling import REPEAT_LAST_N, sampler_for
from smallfirst.types import ChatRequest


class _Recorder:
    """Takes every stage added to a chain and keeps the penalties' arguments."""

    def __init__(self) -> None:
        self.penalties: list[dict[str, Any]] = []

    def add_penalties(self, **arguments: Any) -> None:
        self.penalties.append(arguments)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _Llama:
    def n_vocab(self) -> int:
        return 100


def _penalties(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], room: int) -> Any:
    from llama_cpp import _internals

    monkeypatch.setattr(_internals, "LlamaSampler", _Recorder)
    request = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    )
    return sampler_for(_Llama(), request, room).penalties


def test_frequency_and_presence_penalties_count_over_the_whole_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenAI's penalties count how often a token was sampled before, however far back; they
    looked back on llama.cpp's last 64 tokens only, so a 200-token answer could repeat a word
    from its start unpenalized."""
    body = {"frequency_penalty": 1.5, "presence_penalty": 0.5, "repeat_penalty": 1.3}
    penalties = _penalties(monkeypatch, body, 200)
    scoring = [p for p in penalties if p["penalty_freq"] or p["penalty_present"]]
    assert [(p["penalty_freq"], p["penalty_present"]) for p in scoring] == [(1.5, 0.5)]
    assert scoring[0]["penalty_last_n"] >= 200
    # llama.cpp's own repeat penalty keeps its window (repeat_last_n), as its server has it
    repeating = [p for p in penalties if p["penalty_repeat"] != 1.0]
    assert [(p["penalty_repeat"], p["penalty_last_n"]) for p in repeating] == [(1.3, REPEAT_LAST_N)]
