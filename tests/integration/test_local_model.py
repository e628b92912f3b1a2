"""The real bundled model behind a real gateway process, driven by the official openai client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.integration.conftest import Server, metric_value
from tests.integration.conftest import openai_client as client

MODEL = "smollm2-135m"
# Greedy counting goes on for all 1,500 tokens: about 10 s of generation here.
LONG_ANSWER = {
    "model": MODEL,
    "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
    "max_tokens": 1500,
    "temperature": 0,
}
pytestmark = pytest.mark.integration


def test_chat_non_stream(gateway: Server) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    reply = raw.parse()
    assert raw.headers["x-smallfirst-model"] == MODEL
    assert reply._request_id == raw.headers["x-request-id"]  # the request log's row
    assert raw.headers["x-smallfirst-tier"] == "edge"
    assert reply.model == MODEL
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.prompt_tokens > 5


def test_chat_stream_with_usage(gateway: Server) -> None:
    stream = client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=20,
        temperature=0,  # greedy: sampled, an answer could be one end token, and empty
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 20
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}


def test_logprobs_are_real_distributions(gateway: Server) -> None:
    reply = client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say yes."}],
        max_tokens=6,
        logprobs=True,
        top_logprobs=3,
        seed=7,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content
    for item in content:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        values = [t.logprob for t in item.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert values[0] >= item.logprob - 1e-4  # the best alternative is at least as likely


def test_text_completion_logprobs(gateway: Server) -> None:
    reply = client(gateway).completions.create(
        model=MODEL, prompt="1, 2, 3, 4,", max_tokens=5, logprobs=2, temperature=0
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens
    assert "".join(logprobs.tokens) == reply.choices[0].text


def test_an_empty_prompt_starts_a_text_and_ends_once(gateway: Server) -> None:
    """As OpenAI's legacy completions: the model reads only its start-of-text token, which
    the echo leaves out. Each such request ends once: the slots add up afterwards (an error
    after a slot was chosen once ended its request twice and drove the busy count below 0)."""
    before = slot_counts(gateway)
    assert before[0] == 0
    assert before[1] >= 1
    url = f"{gateway.url}/v1/completions"
    body = {"model": MODEL, "prompt": "", "max_tokens": 4, "temperature": 0}
    plain = httpx.post(url, json=body, timeout=60)
    echoed = httpx.post(url, json={**body, "echo": True, "logprobs": 1}, timeout=60)
    batch = httpx.post(url, json={**body, "prompt": ["", "Hello"]}, timeout=60)
    assert [r.status_code for r in (plain, echoed, batch)] == [200, 200, 200]
    text = plain.json()["choices"][0]["text"]
    assert plain.json()["usage"]["prompt_tokens"] == 1
    assert echoed.json()["choices"][0]["text"] == text
    assert "".join(echoed.json()["choices"][0]["logprobs"]["tokens"]) == text
    first, second = batch.json()["choices"]
    assert first["text"] == text
    assert second["index"] == 1
    assert slot_counts(gateway) == before


def test_a_completion_without_max_tokens_writes_openais_default_16_tokens(
    gateway: Server,
) -> None:
    """As OpenAI's legacy completions and vLLM: greedy counting wrote to the context's end."""
    unlimited = {field: value for field, value in LONG_ANSWER.items() if field != "max_tokens"}
    answer = httpx.post(f"{gateway.url}/v1/completions", json=unlimited, timeout=120).json()
    assert answer["usage"]["completion_tokens"] == 16
    assert answer["choices"][0]["finish_reason"] == "length"


def test_a_batch_with_one_prompt_too_long_is_refused_naming_it(gateway: Server) -> None:
    """Through the openai client: the 400 says which prompt of the batch (it said "prompt")."""
    too_long = "hello " * 9000  # 9,000 tokens: the context holds 8,192
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).completions.create(
            model=MODEL, prompt=["Hi there", too_long, "Bye"], max_tokens=3
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("prompt.1", "context_length_exceeded")
    assert error["message"].startswith("prompt 1 of the batch: This model's maximum context")


def slot_counts(server: Server) -> tuple[float, float]:
    """The bundled model's busy and free slots, from /metrics."""
    metrics = httpx.get(f"{server.url}/metrics").text
    return (
        metric_value(metrics, "smallfirst_slots", f'model="{MODEL}",state="busy"'),
        metric_value(metrics, "smallfirst_slots", f'model="{MODEL}",state="free"'),
    )


def test_json_schema_output_parses_and_validates(gateway: Server) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a person. Reply in JSON."}],
        max_tokens=120,
        seed=1,  # sampled, a name string can run past any token limit: one fixed draw
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    assert reply.choices[0].finish_reason == "stop"
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)


@pytest.mark.parametrize("stream", [False, True])
def test_a_character_cut_by_max_tokens_is_dropped_not_replaced(
    gateway: Server, stream: bool
) -> None:
    # Greedy, this answer is a run of fish emojis, each several tokens: 40 tokens end inside one.
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Reply with five emojis about the sea 🌊🐟"}],
        "max_tokens": 40,
        "temperature": 0,
    }
    if stream:
        events = client(gateway).chat.completions.create(**body, stream=True)
        text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    else:
        text = client(gateway).chat.completions.create(**body).choices[0].message.content or ""
    assert "🐟" in text
    assert "\ufffd" not in text


def test_logprob_bytes_rebuild_characters_split_across_tokens(gateway: Server) -> None:
    """Each token of an emoji is a piece of a character: its text is U+FFFD, and its `bytes`
    are the piece itself, so that all of them joined read as the answer (OpenAI's promise)."""
    reply = client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Reply with five emojis about the sea 🌊🐟"}],
        max_tokens=12,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content
    assert any(item.token == "\ufffd" for item in content)  # the test's premise: split characters
    joined = b"".join(bytes(item.bytes or []) for item in content)
    assert joined.decode("utf-8") == reply.choices[0].message.content
    for item in content:
        assert all(top.bytes for top in item.top_logprobs)


def test_context_overflow_is_400_not_truncation(gateway: Server) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client(gateway).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hello " * 3000}],
            max_tokens=10,
        )
    assert error.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=5000
        )


def test_unknown_model_is_404(gateway: Server) -> None:
    with pytest.raises(openai.NotFoundError):
        client(gateway).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )


def test_concurrent_requests_all_complete(gateway: Server) -> None:
    def ask(n: int) -> str:
        reply = client(gateway).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Say the number {n}."}],
            max_tokens=12,
        )
        return reply.choices[0].finish_reason

    with ThreadPoolExecutor(4) as pool:
        reasons = list(pool.map(ask, range(4)))
    assert len(reasons) == 4
    assert set(reasons) <= {"stop", "length"}


@pytest.mark.parametrize("stream", [True, False])
def test_client_that_leaves_frees_the_worker(gateway: Server, stream: bool) -> None:
    def cancelled() -> float:
        text = httpx.get(f"{gateway.url}/metrics").text
        return metric_value(text, "smallfirst_generations_cancelled_total", f'model="{MODEL}"')

    before = cancelled()
    body = {**LONG_ANSWER, "stream": stream}
    url = f"{gateway.url}/v1/completions"
    if stream:
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in received)
    else:  # a client-side timeout, long before 1,500 tokens
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, json=body, timeout=httpx.Timeout(60, read=1.0))
    deadline = time.monotonic() + 60
    while cancelled() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cancelled() == before + 1
    follow_up = client(gateway).completions.create(model=MODEL, prompt="Hello", max_tokens=3)
    assert follow_up.choices[0].text is not None


def test_a_client_that_leaves_during_a_long_prompt_stops_its_evaluation(gateway: Server) -> None:
    """~2,000 prompt tokens take the bundled model 8-10 s to read here; the client gives up
    after 1 s. The model stops within a piece of the prompt: asked again, only the pieces read
    before that come from its context (before, all of it had been read for nobody)."""
    clauses = (f"Clause {i}: the tenant keeps the premises in good order." for i in range(140))
    body = {"model": MODEL, "prompt": " ".join(clauses), "max_tokens": 1, "temperature": 0}
    url = f"{gateway.url}/v1/completions"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, timeout=httpx.Timeout(60, read=1.0))
    again = httpx.post(url, json=body, timeout=120).json()["usage"]
    assert 1500 < again["prompt_tokens"] < 2048
    assert again["prompt_tokens_details"]["cached_tokens"] < again["prompt_tokens"] // 2


def test_a_full_queue_answers_429_at_once_and_the_queued_requests_complete(
    gateway: Server,
) -> None:
    """The gateway fixture gives the model queue_size 8: behind one long answer, 8 of 12 new
    requests wait and 4 are refused (before, a stream past the queue waited forever)."""
    long_answer = {**LONG_ANSWER, "stream": True}
    short = {"model": MODEL, "prompt": "Hello", "max_tokens": 3}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/completions", json=long_answer, timeout=60
    ) as busy:
        lines = busy.iter_lines()  # kept: a dropped iterator closes the connection
        next(lines)  # the worker is generating now
        with ThreadPoolExecutor(12) as pool:
            futures = [
                pool.submit(httpx.post, f"{gateway.url}/v1/completions", json=short, timeout=60)
                for _ in range(12)
            ]
            deadline = time.monotonic() + 30
            while sum(f.done() for f in futures) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            refused = [f.result() for f in futures if f.done()]
            busy.close()  # frees the worker for the 8 that wait
            answered = [f.result() for f in futures]
    assert [r.status_code for r in refused] == [429] * 4
    # when the answers ahead should have ended, by the model's recent answers: one value
    waits = {int(r.headers["retry-after"]) for r in refused}
    assert len(waits) == 1
    assert 1 <= waits.pop() <= 60
    assert refused[0].json()["error"]["code"] == "queue_full"
    assert sorted(r.status_code for r in answered) == [200] * 8 + [429] * 4
    metrics = httpx.get(f"{gateway.url}/metrics").text
    label = f'model="{MODEL}"'
    assert metric_value(metrics, "smallfirst_queue_wait_seconds_count", label) >= 9
    assert metric_value(metrics, "smallfirst_queue_wait_seconds_sum", label) > 0


def test_responses_api_through_the_openai_sdk(gateway: Server) -> None:
    api = client(gateway)
    whole = api.responses.create(
        model=MODEL,
        instructions="Answer briefly.",
        input="Name a colour.",
        max_output_tokens=24,
        temperature=0,
    )
    assert whole.model == MODEL
    assert whole.output_text
    assert whole.usage is not None
    assert 0 < whole.usage.output_tokens <= 24
    with api.responses.stream(
        model=MODEL, input="Count to three.", max_output_tokens=256, temperature=0
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert "".join(deltas) == final.output_text


def test_more_stop_strings_than_openai_allows_are_each_honoured(gateway: Server) -> None:
    """Editors send a code model's whole stop list to a local server; the ninth stops too."""
    stops = [f"never-{i}" for i in range(8)] + [" 12"]
    body = {**LONG_ANSWER, "max_tokens": 32, "stop": stops}
    response = httpx.post(f"{gateway.url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["text"] == " 9, 10, 11,"
    assert choice["finish_reason"] == "stop"
