"""Continuous batching with the real bundled model: the same model served one request at a
time (`serial`) and in slots decoded together (`slots`), in one gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.backends.llamacpp_slots import SlotJob
from smallfirst.config import BUNDLED_MODEL
from smallfirst.types import ChatRequest
from tests.integration.conftest import (
    Server,
    bundled_model_twins,
    loaded_models,
    logged,
    metric_value,
    start_server,
)

pytestmark = pytest.mark.integration
COUNTING = "1, 2, 3, 4, 5, 6,"  # the model counts on until max_tokens: a long answer


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from bundled_model_twins(tmp_path_factory, "slots", {"serial": 1, "slots": 3}, 2048)


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}},
    "required": ["city", "rank"],
}
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("chat/completions", {"messages": [{"role": "user", "content": "Name three fruits."}]}),
    (
        "chat/completions",
        {
            "messages": [{"role": "user", "content": "A city and its rank, as JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
        },
    ),
    (
        "chat/completions",
        {
            "messages": [{"role": "user", "content": "Why is the sea salty?"}],
            "logprobs": True,
            "top_logprobs": 2,
        },
    ),
    ("completions", {"prompt": "The three primary colours are", "stop": ["."], "logprobs": 1}),
    ("completions", {"prompt": COUNTING, "max_tokens": 40}),
]


def answer(server: Server, model: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = {"model": model, "max_tokens": 24, "temperature": 0, **body}
    response = httpx.post(f"{server.url}/v1/{path}", json=request, timeout=120)
    assert response.status_code == 200, response.text
    result = response.json()
    choice = result["choices"][0]
    return {
        "text": choice.get("message", {}).get("content") or choice.get("text"),
        "finish": choice["finish_reason"],
        "logprobs": json.dumps(choice.get("logprobs"), sort_keys=True)[:2000],
        "completion_tokens": result["usage"]["completion_tokens"],
    }


def test_answers_decoded_together_equal_answers_one_at_a_time(twins: Server) -> None:
    serial = [answer(twins, "serial", path, body) for path, body in REQUESTS]
    with ThreadPoolExecutor(len(REQUESTS)) as pool:  # more requests than slots: some wait
        together = list(pool.map(lambda item: answer(twins, "slots", *item), REQUESTS))
    assert together == serial
    assert json.loads(together[1]["text"]).keys() == {"city", "rank"}


def test_a_short_request_is_answered_while_a_long_one_goes_on(twins: Server) -> None:
    """Server-side order, from the request log: the short request, sent once the long one
    streams, ends first (one at a time, it would wait for the long one to end)."""
    body = {"model": "slots", "prompt": COUNTING, "max_tokens": 400, "temperature": 0}
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{twins.url}/v1/completions", json={**body, "stream": True}) as long,
    ):
        lines = long.iter_lines()
        first = json.loads(next(line for line in lines if line.startswith("data: {"))[6:])
        metrics = client.get(f"{twins.url}/metrics").text
        busy = metric_value(metrics, "smallfirst_slots", 'model="slots",state="busy"')
        free = metric_value(metrics, "smallfirst_slots", 'model="slots",state="free"')
        short = client.post(
            f"{twins.url}/v1/completions",
            json={"model": "slots", "prompt": "Hello", "max_tokens": 2, "temperature": 0},
        ).json()
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert (busy, free) == (1, 2)  # /metrics while the long answer was under way
    assert short["usage"]["completion_tokens"] == 2
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert ended_at(twins, short["id"]) < ended_at(twins, first["id"])


def ended_at(server: Server, response_id: str) -> float:
    """When the gateway finished the request (its log row's start plus latency)."""
    row_id = response_id.removeprefix("cmpl-")
    return float(logged(server, "created_at + latency_ms / 1000", row_id))


def test_a_client_that_leaves_frees_its_slot(twins: Server) -> None:
    body = {"model": "slots", "prompt": COUNTING, "max_tokens": 1500, "temperature": 0}
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{twins.url}/v1/completions", json={**body, "stream": True}) as long,
    ):
        lines = long.iter_lines()
        assert next(line for line in lines if line.startswith("data: {"))
    # The stream was closed after its first event; the generation stops within a step.
    cancelled = 0.0
    for _ in range(100):
        metrics = httpx.get(f"{twins.url}/metrics").text
        cancelled = metric_value(metrics, "smallfirst_generations_cancelled_total", 'model="slots"')
        if cancelled:
            break
        threading.Event().wait(0.1)
    assert cancelled == 1


def test_more_conversations_than_slots_resume_from_saved_states(twins: Server) -> None:
    """Four long prompts in turn through three slots: the fourth takes the first one's slot,
    whose sequence is saved first and restored when the first prompt comes back."""

    def ask(topic: str) -> tuple[str, int, int]:
        rules = " ".join(f"Rule {i}: answer about {topic} in one line." for i in range(30))
        result = httpx.post(
            f"{twins.url}/v1/chat/completions",
            json={
                "model": "slots",
                "messages": [
                    {"role": "system", "content": rules},
                    {"role": "user", "content": f"One fact about {topic}."},
                ],
                "max_tokens": 12,
                "temperature": 0,
            },
            timeout=120,
        ).json()
        usage = result["usage"]
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        return result["choices"][0]["message"]["content"], usage["prompt_tokens"], cached

    def restored() -> float:
        metrics = httpx.get(f"{twins.url}/metrics").text
        labels = 'model="slots",source="saved"'
        return metric_value(metrics, "smallfirst_prompt_tokens_reused_total", labels)

    first, prompt_tokens, _ = ask("owls")
    for topic in ("tides", "glaciers", "comets"):
        ask(topic)
    before = restored()
    again, _, cached = ask("owls")
    assert prompt_tokens > 300
    assert cached == prompt_tokens - 1
    assert restored() - before == cached
    assert again == first  # the restored keys and values answer as the live ones did


def test_a_prompt_read_beside_answers_under_way_gets_the_logits_it_gets_alone() -> None:
    """Driven step by step in-process, so the batch always holds the shape that once went
    wrong: two answers' next tokens and another request's prompt in the same decode."""
    engine = LlamaEngine(
        resolve_model_path(BUNDLED_MODEL), n_ctx=512, n_threads=None, n_batch=512, parallel=3
    )
    try:
        # SmolLM2-135M keeps 30 layers x (keys + values) x 3 heads x 64 x 2 bytes per token
        assert engine.slots.kv_bytes == 3 * 512 * 30 * 2 * 3 * 64 * 2
        with_others = run_in_slots(engine, ["owls", "bread"], late="tides")
        engine.slots.clear()  # nothing kept: "tides" is read from scratch, on its own
        alone = run_in_slots(engine, [], late="tides")
    finally:
        engine.close()
    assert with_others == alone


def test_conversations_taking_turns_keep_a_slot_each_without_saved_states() -> None:
    """Chat prompts share their template's first tokens: when those counted, every prompt
    went to the slot used last, and two conversations evicted each other from it (each turn
    read again) while the other slots stayed empty."""
    engine = LlamaEngine(
        resolve_model_path(BUNDLED_MODEL),
        n_ctx=512,
        n_threads=None,
        n_batch=512,
        parallel=3,
        prompt_cache_bytes=0,
    )
    try:
        answered = [answer_in_slots(engine, topic) for topic in ("owls", "tides", "owls")]
    finally:
        engine.close()
    (_, owls_tokens), (tides_cached, _), (owls_cached, _) = answered
    assert tides_cached == 0  # a few template tokens do not take the slot owls is in
    assert owls_cached == owls_tokens - 1


def answer_in_slots(engine: LlamaEngine, topic: str) -> tuple[int, int]:
    """A long greedy chat prompt answered alone; its cached and prompt tokens."""
    rules = " ".join(f"Rule {i}: answer about {topic} in one line." for i in range(20))
    request = ChatRequest(
        model="m",
        messages=[  # type: ignore[list-item]
            {"role": "system", "content": rules},
            {"role": "user", "content": "One fact."},
        ],
        max_tokens=4,
        temperature=0,
    )
    prompt = engine.prepare(request)
    cached = engine.slots.start(
        SlotJob(request, lambda chunk: None, threading.Event(), 0.0), prompt
    )
    while engine.slots.busy:
        engine.slots.step()
    return cached, len(prompt.tokens)


def run_in_slots(engine: LlamaEngine, early: list[str], late: str) -> list[Any]:
    """Fill every slot with a short answer; start `early` requests and step until they are
    generating; then start `late` (it keeps the template's prefix and reads the rest) and
    run all to the end. Returns `late`'s chunks (text and logprobs)."""
    chunks: list[Any] = []

    def start(topic: str, emit: Any) -> None:
        request = ChatRequest(
            model="m",
            messages=[{"role": "user", "content": f"Write three sentences about {topic}."}],  # type: ignore[list-item]
            max_tokens=16,
            temperature=0,
            logprobs=True,
            top_logprobs=2,
        )
        job = SlotJob(request, emit, threading.Event(), 0.0)
        engine.slots.start(job, engine.prepare(request))

    for topic in ("ink", "salt", "moss"):  # every slot holds the chat template's prefix
        start(topic, lambda chunk: None)
    while engine.slots.busy:
        engine.slots.step()
    for topic in early:
        start(topic, lambda chunk: None)
    for _ in range(2):  # their prompts, then their last prompt tokens
        engine.slots.step()
    start(late, lambda chunk: chunks.append(chunk.model_dump()))
    while engine.slots.busy:
        engine.slots.step()
    return chunks


# Two bundled-model ids whose files (~100 MB each) fit the budget together, but whose four
# slots of 8,192 tokens (~750 MB each) do not. The second loads on its first request only: a
# preload at startup could hold up that request until the first model's answer was over.
TWO_MODELS_OVER_BUDGET = {
    "local": {"memory_budget_mb": 1200},
    "models": [
        {"id": "first", "tier": "edge", "context_length": 8192, "parallel": 4},
        {"id": "second", "tier": "onprem", "context_length": 8192, "parallel": 4, "preload": False},
    ],
}


def test_the_memory_budget_counts_the_slots_key_value_cells(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Loading the second model of `TWO_MODELS_OVER_BUDGET` unloads the first."""
    server = start_server(TWO_MODELS_OVER_BUDGET, tmp_path_factory.mktemp("budget"))
    try:
        for model in ("first", "second"):
            body = {"model": model, "prompt": "Hi", "max_tokens": 1}
            assert httpx.post(f"{server.url}/v1/completions", json=body, timeout=120).is_success
        loaded = loaded_models(server)
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    assert loaded == {"first": False, "second": True}
    loads = {
        (model, event): metric_value(
            metrics, "smallfirst_model_loads_total", f'event="{event}",model="{model}"'
        )
        for model in ("first", "second")
        for event in ("load", "unload")
    }
    assert loads == {
        ("first", "load"): 1,
        ("first", "unload"): 1,
        ("second", "load"): 1,
        ("second", "unload"): 0,
    }


def test_a_model_loaded_beside_a_busy_one_is_trimmed_once_it_is_idle(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The budget cannot unload a model in use: the second loads over budget while the first
    answers, and goes when its own answer ends (it is the idle one). The first answer is long
    (thousands of tokens) and ended by the client, so it is under way whatever the machine's
    speed: a 300-token answer once ended before the second had loaded on a busy CI machine."""
    server = start_server(TWO_MODELS_OVER_BUDGET, tmp_path_factory.mktemp("trim"))
    body = {
        "model": "first",
        "prompt": COUNTING,
        "max_tokens": 4000,
        "temperature": 0,
        "stream": True,
    }
    try:
        with (
            httpx.Client(timeout=120) as client,
            client.stream("POST", f"{server.url}/v1/completions", json=body) as long,
        ):
            lines = long.iter_lines()
            assert next(line for line in lines if line.startswith("data: {"))
            short = {"model": "second", "prompt": "Hi", "max_tokens": 1}
            assert client.post(f"{server.url}/v1/completions", json=short).is_success
            during = _once_settled(server)
        after = _once_settled(server)
    finally:
        server.stop()
    assert during == {"first": True, "second": False}
    assert after == {"first": True, "second": False}


def _once_settled(server: Server) -> dict[str, bool]:
    """Which models are loaded, once the over-budget pair has been trimmed."""
    loaded: dict[str, bool] = {}
    for _ in range(300):  # a hang guard with `eventually`'s bound (30 s), not a timing
        loaded = loaded_models(server)
        if not all(loaded.values()):
            break
        threading.Event().wait(0.1)
    return loaded
