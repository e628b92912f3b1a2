"""llama.cpp's sampling knobs (`top_k`, `min_p`, `repeat_penalty` / vLLM's
`repetition_penalty`) on the real bundled model: each acts where llama.cpp's server says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"  # greedy, the model counts on
STORY = "Once upon a time"
HOT = {"prompt": STORY, "temperature": 1.8, "top_p": 1.0, "seed": 3}  # wanders off greedy


def answer(gateway: Server, **knobs: Any) -> str:
    body = {"model": "smollm2-135m", "prompt": COUNTING, "max_tokens": 24, **knobs}
    response = httpx.post(f"{gateway.url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["text"])


def test_top_k_1_and_min_p_1_leave_only_the_likeliest_token(gateway: Server) -> None:
    greedy = answer(gateway, prompt=STORY, temperature=0)
    assert answer(gateway, **HOT) != greedy  # the hot setting alone wanders off
    assert answer(gateway, **HOT, top_k=1) == greedy
    assert answer(gateway, **HOT, min_p=1.0) == greedy


def test_a_repeat_penalty_changes_a_repetitive_answer_under_either_name(gateway: Server) -> None:
    greedy = answer(gateway, temperature=0)
    penalised = answer(gateway, temperature=0, repeat_penalty=1.8)
    assert penalised != greedy
    assert answer(gateway, temperature=0, repetition_penalty=1.8) == penalised
    assert answer(gateway, temperature=0, repeat_penalty=1.0) == greedy  # 1: no penalty
