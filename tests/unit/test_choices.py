"""`n` answers to one prompt (`choices`), with fake backends: shapes, usage, seeds, streams,
privacy and the cascade, and how the answers of a one-answer backend are fanned out."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.fake import FakeReply
from smallfirst.choices import fan_out, merged_usage
from smallfirst.completions import Chunk, Usage
from smallfirst.errors import UpstreamError
from smallfirst.logs import RequestRecord
from smallfirst.privacy.guard import GuardResult
from smallfirst.privacy.redact import Redaction
from smallfirst.privacy_step import restore
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest, GenerateRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    client, gateway = fake_client(fake_settings(tmp_path, log_prompts=True))
    with client:
        yield client, gateway


def events_of(response: Any) -> list[dict[str, Any]]:
    lines = response.text.splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def test_n_answers_come_back_as_numbered_choices_with_the_prompt_counted_once(
    api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, gateway = api
    single = client.post("/v1/chat/completions", json=chat_body()).json()
    fake_backend(gateway, "tiny").queue("One.", "Two words.", "Three words here.")
    response = client.post("/v1/chat/completions", json=chat_body(n=3, seed=7))
    body = response.json()
    assert response.status_code == 200
    texts = sorted(choice["message"]["content"] for choice in body["choices"])
    assert texts == ["One.", "Three words here.", "Two words."]
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert body["usage"]["prompt_tokens"] == single["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] == 1 + 2 + 3
    asked = fake_backend(gateway, "tiny").requests[-3:]
    assert sorted((r.n, r.seed) for r in asked) == [(1, 7), (1, 8), (1, 9)]
    client.get("/metrics")  # the log writer catches up in the background
    gateway.request_log.close()
    logged = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT response, completion_tokens FROM requests ORDER BY created_at DESC LIMIT 1"
    )
    response_text, completion_tokens = logged.fetchone()
    assert completion_tokens == 6
    assert response_text.splitlines()[0].startswith("[0] ")
    assert len(response_text.splitlines()) == 3


def test_text_completions_give_n_choices_too(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = client.post("/v1/completions", json={"model": "big", "prompt": "Once", "n": 2}).json()
    assert [(c["index"], c["text"]) for c in body["choices"]] == [
        (0, "Hello from big."),
        (1, "Hello from big."),
    ]


def test_a_stream_of_n_answers_opens_fills_and_finishes_each_and_counts_usage_once(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    fake_backend(gateway, "tiny").queue("Alpha beta gamma.", "Delta.")
    body = chat_body(n=2, stream=True, stream_options={"include_usage": True})
    events = events_of(client.post("/v1/chat/completions", json=body))
    roles = [
        e["choices"][0]["index"]
        for e in events
        if e["choices"] and "role" in e["choices"][0]["delta"]
    ]
    assert roles == [0, 1]
    texts = {0: "", 1: ""}
    finishes = {}
    for event in events:
        for choice in event["choices"]:
            texts[choice["index"]] += choice["delta"].get("content", "")
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert sorted(texts.values()) == ["Alpha beta gamma.", "Delta."]
    assert finishes == {0: "stop", 1: "stop"}
    usages = [e["usage"] for e in events if e.get("usage")]
    assert len(usages) == 1
    assert usages[0]["completion_tokens"] == 3 + 1
    assert events[-1]["choices"] == []  # the usage event comes last


def test_each_answer_gets_its_redacted_values_back(tmp_path: Path) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    name, email = "John Smith", "john.smith@example.com"
    prompt = f"My name is {name} and my e-mail is {email}. Write me a welcome note."
    body = chat_body("big", messages=[{"role": "user", "content": prompt}], n=2)
    with client:
        fake_backend(gateway, "big").queue("Dear <PERSON_1>.", "Mail <EMAIL_ADDRESS_1> now.")
        whole = client.post("/v1/chat/completions", json=body).json()
        fake_backend(gateway, "big").queue("Dear <PERSON_1>.", "Mail <EMAIL_ADDRESS_1> now.")
        events = events_of(client.post("/v1/chat/completions", json={**body, "stream": True}))
    sent = fake_backend(gateway, "big").requests
    assert all(name not in m.text for r in sent if isinstance(r, ChatRequest) for m in r.messages)
    expected = sorted([f"Dear {name}.", f"Mail {email} now."])
    assert sorted(c["message"]["content"] for c in whole["choices"]) == expected
    streamed = {0: "", 1: ""}
    for event in events:
        for choice in event["choices"]:
            streamed[choice["index"]] += choice["delta"].get("content", "")
    assert sorted(streamed.values()) == expected


def test_placeholders_split_across_pieces_are_restored_within_each_answer() -> None:
    guard = GuardResult(
        action="redact", messages=[], redaction=Redaction({"<PERSON_1>": "Ann Lee"})
    )
    pieces = [(0, "Dear <PER"), (1, "Hi <PERSON"), (0, "SON_1>, hello"), (1, "_1>!")]
    chunks = [Chunk(index=i, text=t) for i, t in pieces]
    chunks += [Chunk(index=0, finish_reason="stop"), Chunk(index=1, finish_reason="stop")]
    restored = restore(chunks, guard)
    by_answer = ["".join(c.text for c in restored if c.index == i) for i in (0, 1)]
    assert by_answer == ["Dear Ann Lee, hello", "Hi Ann Lee!"]


def cascade_client(tmp_path: Path) -> tuple[TestClient, Gateway]:
    routing = {"router": "cascade", "cascade": {"min_mean_logprob": -1.0}}
    return fake_client(fake_settings(tmp_path, routing=routing))


def test_the_cascade_keeps_n_small_answers_only_if_it_is_sure_of_every_one(
    tmp_path: Path,
) -> None:
    client, gateway = cascade_client(tmp_path)
    tiny = fake_backend(gateway, "tiny")
    with client:
        tiny.queue(FakeReply("Sure.", logprob=-0.1), FakeReply("Also sure.", logprob=-0.2))
        kept = client.post("/v1/chat/completions", json=chat_body("auto", n=2)).json()
        tiny.queue(FakeReply("Sure.", logprob=-0.1), FakeReply("Hmm, maybe.", logprob=-3.0))
        escalated = client.post("/v1/chat/completions", json=chat_body("auto", n=2)).json()
    assert kept["model"] == "tiny"
    assert sorted(c["message"]["content"] for c in kept["choices"]) == ["Also sure.", "Sure."]
    assert "kept: mean logprob -0.200" in kept["smallfirst"]["reason"]
    assert escalated["model"] == "big"
    assert "escalated: mean logprob -3.000" in escalated["smallfirst"]["reason"]
    assert len(escalated["choices"]) == 2


REQUEST = ChatRequest.model_validate({**chat_body(), "n": 5})


def counted_opener(
    running: list[int], peak: list[int], closed: list[int], fail_index: int | None = None
) -> Any:
    """Streams of three pieces that record how many run at once and which were closed."""

    async def answer(request: GenerateRequest) -> AsyncIterator[Chunk]:
        index = request.seed or 0
        running.append(index)
        peak[0] = max(peak[0], len(running))
        try:
            for piece in ("a", "b"):
                await asyncio.sleep(0.01)
                if index == fail_index:
                    raise UpstreamError("choice failed")
                yield Chunk(text=piece)
            yield Chunk(finish_reason="stop", usage=Usage(prompt_tokens=4, completion_tokens=2))
        finally:
            running.remove(index)
            closed.append(index)

    return answer


async def test_fan_out_keeps_to_its_concurrency_and_tags_each_answer() -> None:
    running: list[int] = []
    peak, closed = [0], []
    seeded = REQUEST.model_copy(update={"seed": 0})
    chunks = [c async for c in fan_out(counted_opener(running, peak, closed), seeded, 2)]
    assert peak[0] == 2
    assert sorted(closed) == [0, 1, 2, 3, 4]
    for index in range(5):
        assert "".join(c.text for c in chunks if c.index == index) == "ab"
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]]
    assert chunks[-1].usage == Usage(prompt_tokens=4, completion_tokens=10)
    assert sum(c.finish_reason == "stop" for c in chunks) == 5


async def test_one_failing_answer_fails_them_all_and_stops_the_others() -> None:
    running: list[int] = []
    peak, closed = [0], []
    seeded = REQUEST.model_copy(update={"seed": 0})
    opener = counted_opener(running, peak, closed, fail_index=1)
    with pytest.raises(UpstreamError, match="choice failed"):
        _ = [c async for c in fan_out(opener, seeded, 5)]
    assert running == []
    assert sorted(closed) == [0, 1, 2, 3, 4]


async def test_closing_the_stream_early_stops_every_answer() -> None:
    running: list[int] = []
    peak, closed = [0], []
    seeded = REQUEST.model_copy(update={"seed": 0})
    stream = fan_out(counted_opener(running, peak, closed), seeded, 5)
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.text == "a"
    assert running == []


def test_merged_usage_counts_the_prompt_once() -> None:
    usages = [
        Usage(prompt_tokens=10, cached_tokens=0, completion_tokens=3),
        Usage(prompt_tokens=10, cached_tokens=9, completion_tokens=5),
    ]
    assert merged_usage(usages) == Usage(prompt_tokens=10, cached_tokens=0, completion_tokens=8)


def test_a_batch_of_prompts_answers_each_in_order_and_logs_each(
    api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue("A1.", "A2.", "B1.", "B2.", "C1.", "C2.")
    body = {
        "model": "big",
        "prompt": ["Name a fruit", "Name a colour please", "Name a tree"],
        "n": 2,
    }
    response = client.post("/v1/completions", json=body)
    answer = response.json()
    assert response.status_code == 200
    texts = [choice["text"] for choice in answer["choices"]]
    assert [sorted(texts[i : i + 2]) for i in (0, 2, 4)] == [
        ["A1.", "A2."],
        ["B1.", "B2."],
        ["C1.", "C2."],
    ]
    assert [choice["index"] for choice in answer["choices"]] == list(range(6))
    asked = [r.prompt for r in fake_backend(gateway, "big").requests[-6:]]
    assert sorted(asked) == sorted(
        ["Name a fruit"] * 2 + ["Name a colour please"] * 2 + ["Name a tree"] * 2
    )
    assert answer["usage"]["prompt_tokens"] == 3 + 4 + 3  # each prompt once
    assert answer["usage"]["completion_tokens"] == 6
    assert [b["model"] for b in answer["smallfirst"]["batch"]] == ["big"] * 3
    client.get("/metrics")  # the log writer catches up in the background
    gateway.request_log.close()
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT id, prompt FROM requests WHERE endpoint = 'completions' ORDER BY id"
    )
    request_id = answer["id"].removeprefix("cmpl-")
    assert rows.fetchall() == [
        (f"{request_id}-0", "Name a fruit"),
        (f"{request_id}-1", "Name a colour please"),
        (f"{request_id}-2", "Name a tree"),
    ]


def test_each_prompt_of_a_batch_is_guarded_on_its_own(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue("Noted.", "Hi <PERSON_1>.")
    prompts = ["Nothing private here.", "My name is John Smith, greet me."]
    answer = client.post("/v1/completions", json={"model": "big", "prompt": prompts}).json()
    sent = [r.prompt for r in fake_backend(gateway, "big").requests[-2:]]
    assert sent[0] == prompts[0]
    assert "John Smith" not in sent[1]
    assert [choice["text"] for choice in answer["choices"]] == ["Noted.", "Hi John Smith."]


def test_the_first_failing_prompt_fails_the_batch(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    big = fake_backend(gateway, "big")
    big.queue("fine", UpstreamError("big broke"), "never asked")
    response = client.post("/v1/completions", json={"model": "big", "prompt": ["a", "b", "c"]})
    assert response.status_code == 502
    assert "big broke" in response.json()["error"]["message"]
    assert len(big.requests) == 2  # one prompt at a time here (no slots): c was never sent


def test_the_prompts_a_failure_stopped_are_logged_as_stopped_not_as_left(
    api: tuple[TestClient, Gateway], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were logged as 499 (their client left) and counted as answered, or not at all."""
    client, gateway = api
    big = fake_backend(gateway, "big")
    answer_of = big.complete

    async def complete(request: GenerateRequest) -> Any:
        if request.prompt == "slow":
            await asyncio.sleep(30)  # under way when "bad" fails: cancelled
        if request.prompt == "bad":
            raise UpstreamError("big broke")
        return await answer_of(request)

    monkeypatch.setattr(big, "complete", complete)
    monkeypatch.setattr(gateway, "batch_concurrency", lambda model_id: 2)  # "late" waits
    body = {"model": "big", "prompt": ["slow", "bad", "late"]}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 502
    client.get("/metrics")  # the log writer catches up in the background
    gateway.request_log.close()
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT id, status, error_code FROM requests ORDER BY id"
    )
    batch = response.headers["x-request-id"]
    assert [row for row in rows.fetchall() if row[0] != f"{batch}-1"] == [
        (f"{batch}-0", 502, "batch_stopped"),
        (f"{batch}-2", 502, "batch_stopped"),
    ]


def test_a_prompt_prepared_before_another_was_refused_is_logged_as_stopped(
    tmp_path: Path,
) -> None:
    """It had no row: only prompts cancelled mid-way were logged."""
    client, gateway = fake_client(fake_settings(tmp_path, privacy={"enabled": False}))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:  # 300 is no token of the fake byte tokenizer: the second prompt is a 400
        response = client.post("/v1/completions", json={"model": "tiny", "prompt": [[72], [300]]})
    assert response.status_code == 400
    rows = sorted((r.id[-2:], r.status, r.error_code) for r in records)
    assert rows == [("-0", 400, "batch_stopped"), ("-1", 400, None)]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"prompt": []}, "prompt must be a text, a list of texts, token ids"),
        ({"prompt": ["a"] * 65, "n": 2}, "at most 128 answers per request (prompts x n)"),
    ],
)
def test_batches_beyond_what_is_answered_get_a_400(
    api: tuple[TestClient, Gateway], extra: dict[str, Any], fragment: str
) -> None:
    client, _ = api
    response = client.post("/v1/completions", json={"model": "big", **extra})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_a_batch_of_exactly_the_most_answers_is_answered(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "tiny", "prompt": ["a", "b"], "n": 64, "max_tokens": 1}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.json()
    assert len(response.json()["choices"]) == 128


def test_a_small_model_that_fails_escalates_and_is_counted_against(tmp_path: Path) -> None:
    client, gateway = cascade_client(tmp_path)
    with client:
        fake_backend(gateway, "tiny").queue(UpstreamError("tiny: upstream answered 500: boom"))
        answer = client.post("/v1/chat/completions", json=chat_body("auto")).json()
    assert answer["model"] == "big"
    assert (
        "escalated: tiny failed (tiny: upstream answered 500: boom)"
        in answer["smallfirst"]["reason"]
    )
    assert gateway.health.describe("tiny")  # the failure counts toward the breaker


@pytest.mark.parametrize(
    ("stream", "fallbacks"),
    [(False, None), (True, None), (False, {"cloud": []})],
    ids=["whole", "streamed", "no fallback chain"],
)
def test_an_unsure_draft_answers_when_no_stronger_model_can(
    tmp_path: Path, stream: bool, fallbacks: dict[str, list[str]] | None
) -> None:
    """The strong tier fails and the chain comes down to the small model: its draft, paid
    for already, answers (it was asked again and billed twice). With no fallback chain it
    answers too (it was a 502). Only the strong model is listed as tried before the answer
    (the answering draft's model was listed too: `tiny,big`; QA)."""
    priced_tiny = {
        "id": "tiny",
        "tier": "edge",
        "backend": "fake",
        "input_cost_per_1m": 1.0,
        "output_cost_per_1m": 2.0,
    }
    models = [priced_tiny, {"id": "big", "tier": "cloud", "backend": "fake"}]
    routing: dict[str, Any] = {"router": "cascade", "cascade": {"min_mean_logprob": -1.0}}
    if fallbacks is not None:
        routing["fallbacks"] = fallbacks
    client, gateway = fake_client(fake_settings(tmp_path, models=models, routing=routing))
    tiny, big = fake_backend(gateway, "tiny"), fake_backend(gateway, "big")
    with client:
        tiny.queue(FakeReply("Maybe seven.", logprob=-3.0))
        big.queue(UpstreamError("big: upstream answered 503: busy"))
        response = client.post("/v1/chat/completions", json=chat_body("auto", stream=stream))
    assert len(tiny.requests) == 1
    assert response.headers["x-smallfirst-model"] == "tiny"
    if stream:
        events = [json.loads(line[6:]) for line in response.text.splitlines() if "{" in line]
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == "Maybe seven."
    assert response.headers["x-smallfirst-escalations"] == "big"
    if not stream:
        assert response.json()["smallfirst"]["escalations"] == ["big"]
    reason, cost, prompt_tokens, completion_tokens, escalations = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute(
            "SELECT route_reason, cost_usd, prompt_tokens, completion_tokens, escalations"
            " FROM requests"
            " WHERE id = ?",
            (response.headers["x-request-id"],),
        )
        .fetchone()
    )
    assert "big failed (big: upstream answered 503: busy); so tiny's draft answers" in reason
    assert escalations == "big"
    assert cost == pytest.approx((prompt_tokens * 1.0 + completion_tokens * 2.0) / 1e6)  # once


def test_the_draft_is_capped_by_routing_cascade_max_tokens(tmp_path: Path) -> None:
    routing = {"router": "cascade", "cascade": {"min_mean_logprob": -1.0, "max_tokens": 2}}
    client, gateway = fake_client(fake_settings(tmp_path, routing=routing))
    tiny = fake_backend(gateway, "tiny")
    with client:
        tiny.queue(FakeReply("one two three four", logprob=-0.1))
        capped = client.post("/v1/chat/completions", json=chat_body("auto")).json()
        tiny.queue(FakeReply("one", logprob=-0.1))
        short = client.post("/v1/chat/completions", json=chat_body("auto", max_tokens=1)).json()
    assert tiny.requests[0].token_limit == 2
    assert capped["model"] == "big"
    assert "the draft reached routing.cascade.max_tokens (2)" in capped["smallfirst"]["reason"]
    assert tiny.requests[1].token_limit == 1  # the client's own, shorter limit
    assert short["model"] == "tiny"
