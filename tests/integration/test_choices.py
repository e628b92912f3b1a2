"""`n` answers to one prompt with the real bundled model (each answer in a slot of its own)
and through a real second server (one upstream call for all of them)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.helpers import eventually
from tests.integration.conftest import (
    Server,
    bundled_model_twins,
    busy_slots,
    openai_client,
    prompt_tokens_reused,
)

pytestmark = pytest.mark.integration
PROMPT = [{"role": "user", "content": "Tell me a short story about a fox."}]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from bundled_model_twins(tmp_path_factory, "choices", {"solo": 1, "slots": 3}, 1024)


def texts(server: Server, model: str, **body: Any) -> list[str]:
    request = {"model": model, "messages": PROMPT, "max_tokens": 16, **body}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=request, timeout=120)
    assert response.status_code == 200, response.text
    choices = response.json()["choices"]
    assert [choice["index"] for choice in choices] == list(range(len(choices)))
    return [choice["message"]["content"] for choice in choices]


def test_greedy_choices_decoded_side_by_side_equal_the_single_answer(local: Server) -> None:
    (single,) = texts(local, "solo", temperature=0)
    assert texts(local, "slots", temperature=0, n=3) == [single] * 3
    api = openai_client(local)
    stream = api.chat.completions.create(
        model="slots", messages=PROMPT, max_tokens=16, temperature=0, n=3, stream=True
    )
    streamed = ["", "", ""]
    for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == [single] * 3


def test_seeded_choice_i_is_the_single_answer_with_seed_plus_i(local: Server) -> None:
    sampled = {"temperature": 1.2, "top_p": 1.0}
    choices = texts(local, "solo", n=3, seed=11, **sampled)
    alone = [texts(local, "solo", seed=11 + i, **sampled)[0] for i in range(3)]
    assert choices == alone
    assert len(set(choices)) == 3  # three seeds, three stories


def test_remote_choices_come_from_one_upstream_call(gateway: Server, upstream: Server) -> None:
    before = upstream_rows(upstream)
    api = openai_client(gateway)
    whole = api.chat.completions.create(model="cloud-model", messages=PROMPT, n=2)
    stream = api.chat.completions.create(
        model="cloud-model",
        messages=PROMPT,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert [c.message.content for c in whole.choices] == ["The cloud says hello to you."] * 2
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 12
    streamed = ["", ""]
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == ["The cloud says hello to you."] * 2
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    rows = wait_for_rows(upstream, before + 2)
    assert rows[before:] == [12, 12]  # two calls, each with both answers


def upstream_rows(server: Server) -> int:
    with sqlite3.connect(server.data_dir / "requests.db") as connection:
        (count,) = connection.execute("SELECT count(*) FROM requests").fetchone()
    return int(count)


def wait_for_rows(server: Server, count: int) -> list[int]:
    """The upstream's completion tokens per logged request, once `count` rows are written
    (its log writer flushes every 0.2 s), then checked again: no more rows came after."""
    query = "SELECT completion_tokens FROM requests ORDER BY created_at"
    for _ in range(300):  # a hang guard with `eventually`'s bound (30 s), not a timing
        with sqlite3.connect(server.data_dir / "requests.db") as connection:
            rows = [int(row[0]) for row in connection.execute(query)]
        if len(rows) >= count:
            threading.Event().wait(0.5)
            with sqlite3.connect(server.data_dir / "requests.db") as connection:
                return [int(row[0]) for row in connection.execute(query)]
        threading.Event().wait(0.1)
    raise AssertionError(f"the upstream logged fewer than {count} requests")


def test_the_prompt_is_read_once_and_copied_to_the_other_slots(local: Server) -> None:
    """n answers to a long prompt: one slot reads it, the others copy its cells (counted as
    prompt tokens reused from the context), and every answer is the one given alone."""
    article = " ".join(
        f"Paragraph {i}: the river town kept its bridges in good repair." for i in range(30)
    )
    messages = [{"role": "user", "content": f"{article}\nSummarise this in one line."}]
    body = {"messages": messages, "max_tokens": 12, "temperature": 0, "logprobs": True}
    alone = httpx.post(
        f"{local.url}/v1/chat/completions", json={**body, "model": "solo"}, timeout=120
    )
    before = prompt_tokens_reused(local, "slots", "context")
    together = httpx.post(
        f"{local.url}/v1/chat/completions", json={**body, "model": "slots", "n": 3}, timeout=120
    )
    after = prompt_tokens_reused(local, "slots", "context")
    prompt_tokens = together.json()["usage"]["prompt_tokens"]
    assert prompt_tokens > 300
    # all but the last token were read once (less what that slot already held) and copied
    # twice; without the copies only the chat template's opening would be reused, per slot
    assert after - before >= 2 * (prompt_tokens - 1)
    expected = alone.json()["choices"][0]
    for choice in together.json()["choices"]:
        assert choice["message"]["content"] == expected["message"]["content"]
        ours = [t["logprob"] for t in choice["logprobs"]["content"]]
        theirs = [t["logprob"] for t in expected["logprobs"]["content"]]
        assert ours == pytest.approx(theirs, abs=1e-4)


def test_a_slot_waiting_for_a_prefix_reads_it_itself_when_the_other_client_leaves(
    local: Server,
) -> None:
    """B's prompt is the one A is reading; A's client leaves long before A has read it all:
    B, which waited to copy it, then reads it itself and answers as alone. (Timed, A left
    after 1 s and B came after 0.3 s: on a loaded machine B could come before A had a slot,
    and nothing waited for A.)"""
    notes = " ".join(f"Line {i}: the ferry left pier {i % 7} on time." for i in range(70))
    body = {
        "model": "slots",
        "messages": [{"role": "user", "content": f"{notes}\nWhich pier is busiest?"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    url = f"{local.url}/v1/chat/completions"
    alone = httpx.post(url, json={**body, "model": "solo"}, timeout=120).json()
    with ThreadPoolExecutor(1) as pool, _request_left_at_will(local, body) as leave:
        assert eventually(lambda: busy_slots(local, "slots") == 1)  # A is reading its prompt
        waiting = pool.submit(httpx.post, url, json=body, timeout=120)
        assert eventually(lambda: busy_slots(local, "slots") == 2)  # B waits to copy it
        leave()
        answer = waiting.result().json()
    assert answer["usage"]["prompt_tokens"] > 700  # several seconds of reading here
    assert answer["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]
    # what B kept came from before A (the chat template's opening), not from a copy of A
    assert answer["usage"]["prompt_tokens_details"]["cached_tokens"] < 100


@contextmanager
def _request_left_at_will(server: Server, body: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """A chat request sent on a socket of its own, and a call that closes it: its client
    leaves at the test's moment, not at a timeout's."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as connection:
        connection.sendall(head.encode() + payload)
        yield connection.close


def test_a_batch_of_prompts_through_the_openai_sdk_answers_each_as_alone(local: Server) -> None:
    prompts = ["The capital of Italy is", "Two plus two equals", "Roses are red,"]
    api = openai_client(local)
    batch = api.completions.create(model="slots", prompt=prompts, max_tokens=8, temperature=0)
    alone = [
        api.completions.create(model="solo", prompt=p, max_tokens=8, temperature=0) for p in prompts
    ]
    assert [c.text for c in batch.choices] == [a.choices[0].text for a in alone]
    assert batch.usage is not None
    assert batch.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone if a.usage)
