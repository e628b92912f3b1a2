"""Requests their client leaves before the bundled model is done are logged with the tokens
the model read and wrote (the prompt as /tokenize counts it), not estimated at 4 characters a
token or left at 0; /metrics counts them so too."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, logged, metric_value

MODEL = "smollm2-135m"
# Greedy counting goes on for hundreds of tokens: seconds of generation here.
PROMPT = "Count on, one number a line, for a long while: 1, 2, 3, 4, 5, 6, 7, 8,"
pytestmark = pytest.mark.integration


def tokens_of(server: Server, prompt: str) -> int:
    answer = httpx.post(f"{server.url}/tokenize", json={"model": MODEL, "prompt": prompt})
    count: int = answer.json()["count"]
    return count


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": PROMPT, "max_tokens": 800, "temperature": 0, **extra}


def tokens_counted(server: Server) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    labels = f'direction="{{}}",model="{MODEL}",tier="edge"'
    name = "smallfirst_tokens_total"
    return metric_value(text, name, labels.format("input")), metric_value(
        text, name, labels.format("output")
    )


@pytest.mark.parametrize("n", [1, 2])
def test_a_stream_left_early_is_logged_with_the_tokens_the_model_counted(
    gateway: Server, n: int
) -> None:
    """It was logged at 4 characters a token: prompt_tokens 18 for this 37-token prompt."""
    before = tokens_counted(gateway)
    url = f"{gateway.url}/v1/completions"
    with httpx.stream("POST", url, json=body(stream=True, n=n), timeout=60) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        received = [line for _, line in zip(range(8), lines, strict=False) if line]
    assert all(line.startswith("data: ") for line in received)
    row = "status || ' ' || prompt_tokens || ' ' || completion_tokens"
    status, prompt_tokens, completion_tokens = map(int, logged(gateway, row, request_id).split())
    assert (status, prompt_tokens) == (499, tokens_of(gateway, PROMPT))
    assert len(received) <= completion_tokens < 800 * n
    after = tokens_counted(gateway)
    assert (after[0] - before[0], after[1] - before[1]) == (prompt_tokens, completion_tokens)


@pytest.mark.parametrize("n", [1, 2])
def test_an_answer_left_before_its_end_is_logged_with_the_tokens_written_so_far(
    gateway: Server, n: int
) -> None:
    """An answer not streamed whose client timed out was logged with 0 tokens, read and
    written: the model had read its prompt and written for a second."""
    url = f"{gateway.url}/v1/completions"
    left = _rows_left(gateway)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body(n=n), timeout=httpx.Timeout(60, read=1.5))
    prompt_tokens, completion_tokens = _last_left(gateway, left)
    assert prompt_tokens == tokens_of(gateway, PROMPT)
    assert 0 < completion_tokens < 800 * n


def _rows_left(server: Server) -> int:
    with sqlite3.connect(server.data_dir / "requests.db") as connection:
        (count,) = connection.execute("SELECT count(*) FROM requests WHERE status = 499").fetchone()
    return int(count)


def _last_left(server: Server, before: int) -> tuple[int, int]:
    """Tokens of the 499 row logged after `before` of them (the writer flushes every 0.2 s)."""
    query = "SELECT prompt_tokens, completion_tokens FROM requests WHERE status = 499"
    for _ in range(300):  # a hang guard with `eventually`'s bound (30 s), not a timing
        with sqlite3.connect(server.data_dir / "requests.db") as connection:
            rows = connection.execute(f"{query} ORDER BY created_at").fetchall()
        if len(rows) > before:
            return int(rows[-1][0]), int(rows[-1][1])
        time.sleep(0.1)
    raise AssertionError("the request its client left was not logged")
