"""A client that leaves before its answer is done: the model stops, the log says 499."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from smallfirst.backends.fake import FakeBackend, FakeReply
from smallfirst.completions import Chunk, Completion, Usage, completion_from_chunks
from smallfirst.errors import UpstreamError, UpstreamTimeout
from smallfirst.logs import RequestRecord
from smallfirst.server.routes import WATCH_AFTER_S, unless_client_leaves
from smallfirst.types import GenerateRequest
from smallfirst.usage_so_far import counting
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings, post_scope

SLOW_REPLY = " ".join(["word"] * 40)  # 40 pieces x 0.25 s: far longer than the client waits
# For a client that must leave before the first piece: a piece every 0.25 s raced the client's
# leaving (after WATCH_AFTER_S and its own wait), and on a loaded machine the piece won (CI).
# This bound is a hang guard, not a timing: the answer is cancelled once the client leaves.
NO_PIECE_BEFORE_LEAVING = {"replies": ["unread"], "token_delay_s": 30.0}


async def _post_then_leave(
    app: Any,
    body: dict[str, Any],
    leave_after_s: float,
    path: str = "/v1/chat/completions",
    body_sent: slice = slice(None),
    until: Callable[[], Awaitable[None]] | None = None,
) -> list[Any]:
    """Drive the ASGI app as a server would: the body (or its `body_sent` part), then a
    disconnect (`leave_after_s` after `until()`, if given); return what it sent."""
    payload = json.dumps(body).encode()
    whole = body_sent == slice(None)
    sent: list[Any] = []
    messages = iter([{"type": "http.request", "body": payload[body_sent], "more_body": not whole}])

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is not None:
            return message
        if until is not None:
            await until()
        await asyncio.sleep(leave_after_s)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)
        await asyncio.sleep(0)  # a write yields, as uvicorn's does while the socket drains

    await app(post_scope(path), receive, send)
    return sent


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/tokenize"])
def test_leaving_while_sending_the_body_is_a_quiet_499(
    tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that times out while uploading its body: no traceback, logged as 499."""
    client, gateway = fake_client(fake_settings(tmp_path))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        assert client.portal is not None
        sent = client.portal.call(_post_then_leave, client.app, chat_body(), 0.0, path, slice(0, 9))
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    if path != "/tokenize":  # the tokenizer endpoints log nothing
        assert [(r.status, r.error_code) for r in records] == [(499, "client_closed_request")]


@pytest.mark.parametrize("stream", [False, True])
def test_leaving_before_the_answer_cancels_it_and_logs_499(tmp_path: Path, stream: bool) -> None:
    slow = {"id": "slow", "tier": "edge", "backend": "fake"} | NO_PIECE_BEFORE_LEAVING
    client, gateway = fake_client(fake_settings(tmp_path, models=[slow]))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    body = chat_body("slow", stream=stream)
    with client:
        assert client.portal is not None
        # It leaves before the first piece, so a stream has not begun either.
        sent = client.portal.call(_post_then_leave, client.app, body, 0.05)

    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [499]
    assert [r.status for r in records] == [499]
    assert records[0].model_answered == "slow"  # it had the request when its client left
    assert records[0].tier == "edge"
    assert fake_backend(gateway, "slow").closed_early == (1 if stream else 0)


@pytest.mark.parametrize("how", ["fallback", "cascade"])
def test_leaving_while_the_second_model_answers_is_logged_against_it(
    tmp_path: Path, how: str
) -> None:
    """The 499 went to the model before it (the failed or escalated-from one)."""
    tiny = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["meh"]}
    big = {"id": "big", "tier": "cloud", "backend": "fake", "replies": ["x"]}
    slow = {"replies": [SLOW_REPLY], "token_delay_s": 0.25}
    models = [tiny | slow, big] if how == "fallback" else [tiny, big | slow]
    routing = {"router": "cascade"} if how == "cascade" else {}
    client, gateway = fake_client(
        fake_settings(tmp_path, models=models, routing=routing, privacy={"enabled": False})
    )
    if how == "fallback":
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 503"))
    else:
        fake_backend(gateway, "tiny").queue(FakeReply("meh", logprob=-9.0))  # unsure: escalates
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    body = chat_body("auto", route="cloud") if how == "fallback" else chat_body("auto")
    with client:
        assert client.portal is not None
        client.portal.call(_post_then_leave, client.app, body, 0.1)
    (record,) = records
    answering, before = ("tiny", "big") if how == "fallback" else ("big", "tiny")
    assert (record.status, record.model_answered, record.escalations) == (499, answering, before)


def test_leaving_a_batch_logs_every_prompt_as_left(tmp_path: Path) -> None:
    """The prompt still waiting its turn had no row."""
    slow = {"id": "slow", "tier": "edge", "backend": "fake", "replies": [SLOW_REPLY]}
    settings = fake_settings(tmp_path, models=[slow | {"token_delay_s": 0.25}])
    client, gateway = fake_client(settings)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    body = {"model": "slow", "prompt": ["first", "second"]}  # one at a time: no slots
    with client:
        assert client.portal is not None
        client.portal.call(_post_then_leave, client.app, body, 0.5, "/v1/completions")
    assert sorted((r.id[-2:], r.status) for r in records) == [("-0", 499), ("-1", 499)]


def test_a_stream_left_before_its_body_was_read_is_logged_and_frees_its_budget_hold(
    tmp_path: Path,
) -> None:
    """Its answer was never closed: no log row, and its estimate stayed held as spent (QA: a
    remote model was refused for the rest of the day)."""
    big = {
        "id": "big",
        "tier": "cloud",
        "backend": "fake",
        "replies": [SLOW_REPLY],
        "token_delay_s": 0.01,
        "output_cost_per_1m": 8.0,
    }
    tiny = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["hi"]}
    budget = {"budget": {"daily_usd": 1.0}}  # the hold ($1.6 for 200,000 tokens) is more
    settings = fake_settings(
        tmp_path, models=[tiny, big], routing=budget, privacy={"enabled": False}
    )
    client, gateway = fake_client(settings)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    body = chat_body("big", stream=True, max_tokens=200_000)
    with client:
        assert client.portal is not None
        client.post("/v1/chat/completions", json=chat_body("tiny"))  # warm: answers begin at once
        client.portal.call(_post_then_leave, client.app, body, 0.0)
    assert [r.status for r in records] == [200, 499]
    assert gateway.spend.exhausted(None) is None


def test_a_paid_stream_cut_short_is_costed_for_what_was_sent(tmp_path: Path) -> None:
    """The upstream read the prompt and wrote the answer so far, and bills them: a stream
    the client left before its usage came is costed by estimate (it was logged at $0)."""
    priced = {
        "id": "paid",
        "tier": "cloud",
        "backend": "fake",
        "replies": [SLOW_REPLY],
        "token_delay_s": 0.05,
        "input_cost_per_1m": 1000.0,
        "output_cost_per_1m": 2000.0,
    }
    no_guard = {"enabled": False}  # its first use loads the NER: longer than the client waits
    client, gateway = fake_client(fake_settings(tmp_path, models=[priced], privacy=no_guard))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        assert client.portal is not None
        sent = client.portal.call(_post_then_leave, client.app, chat_body("paid", stream=True), 0.5)
    streamed = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"word" in streamed  # the stream had begun
    (record,) = records
    assert record.status == 499
    assert record.completion_tokens > 0
    assert record.prompt_tokens > 0
    expected = (record.prompt_tokens * 1000.0 + record.completion_tokens * 2000.0) / 1e6
    assert record.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize(
    ("stream", "n", "billed_tokens"), [(False, 1, 50), (True, 1, 0), (False, 2, 0)]
)
def test_a_remote_call_left_before_its_answer_is_billed_by_estimate(
    tmp_path: Path, stream: bool, n: int, billed_tokens: int
) -> None:
    """QA: five calls left by a client with a short timeout were logged at $0 and the daily
    budget never saw them, yet the upstream had answered each. An answer not streamed is
    written to the end all the same (billed as the budget's hold: `max_tokens` each); a
    stream stops when its connection closes (its prompt is billed), and so does the stream
    that asks for `n` answers of a request that is not streamed (review: billed 1,000)."""
    paid = {
        "id": "paid",
        "tier": "cloud",
        "backend": "fake",
        "input_cost_per_1m": 1000.0,
        "output_cost_per_1m": 2000.0,
    } | NO_PIECE_BEFORE_LEAVING
    budget = {"budget": {"daily_usd": 0.05}}  # less than one abandoned answer of 50 tokens
    settings = fake_settings(tmp_path, models=[paid], routing=budget, privacy={"enabled": False})
    client, gateway = fake_client(settings)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        assert client.portal is not None
        body = chat_body("paid", stream=stream, n=n, max_tokens=50)
        client.portal.call(_post_then_leave, client.app, body, 0.05)
        (record,) = records
        assert record.status == 499
        assert record.prompt_tokens > 0
        assert record.completion_tokens == billed_tokens
        expected = (record.prompt_tokens * 1000.0 + record.completion_tokens * 2000.0) / 1e6
        assert record.cost_usd == pytest.approx(expected)
        fake_backend(gateway, "paid").config.token_delay_s = 0.0  # the next answer comes at once
        again = client.post("/v1/chat/completions", json=chat_body("paid", max_tokens=1))
    assert again.status_code == (429 if billed_tokens else 200)


def test_leaving_an_embeddings_request_stops_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: 400 texts left by their client after 3 s went on for ~10 s of CPU and were
    logged as answered; with the SDK's two retries, three times over."""
    import numpy as np

    from smallfirst.embed import DIMENSIONS, encoder

    embedded: list[int] = []

    def slow_embed(self: Any, token_ids: list[int]) -> Any:
        embedded.append(len(token_ids))
        time.sleep(0.02)  # 400 texts: 8 s
        return np.zeros(DIMENSIONS, dtype=np.float32)

    monkeypatch.setattr(encoder.LocalEmbedder, "_embed_ids", slow_embed)
    client, gateway = fake_client(fake_settings(tmp_path))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    body = {"model": "all-minilm-l6-v2", "input": [f"text {i}" for i in range(400)]}
    with client:
        assert client.portal is not None
        sent = client.portal.call(_post_then_leave, client.app, body, 0.3, "/v1/embeddings")
        # the thread's current text (20 ms) ends: the margin is wide, as a loaded machine may
        # pause a thread for a good part of 0.2 s
        time.sleep(1.0)
        stopped_at = len(embedded)
        time.sleep(0.3)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert [(r.status, r.error_code) for r in records] == [(499, "client_closed_request")]
    assert stopped_at < 100
    assert len(embedded) == stopped_at  # nothing more was embedded after it stopped


@pytest.mark.parametrize("received", [True, False])
def test_a_remote_call_that_timed_out_is_billed_if_the_upstream_had_it(
    tmp_path: Path, received: bool
) -> None:
    """A read timeout leaves the answer written and billed upstream (and a slow upstream
    would otherwise spend past the budget); a connection that timed out sent nothing."""
    paid = {
        "id": "paid",
        "tier": "cloud",
        "backend": "fake",
        "replies": ["x"],
        "input_cost_per_1m": 1000.0,
        "output_cost_per_1m": 2000.0,
    }
    budget = {"budget": {"daily_usd": 0.05}}  # less than one answer of 50 tokens
    settings = fake_settings(tmp_path, models=[paid], routing=budget, privacy={"enabled": False})
    client, gateway = fake_client(settings)
    timeout = UpstreamTimeout("paid: upstream timed out")
    timeout.received = received
    fake_backend(gateway, "paid").queue(timeout)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        timed_out = client.post("/v1/chat/completions", json=chat_body("paid", max_tokens=50))
        again = client.post("/v1/chat/completions", json=chat_body("paid", max_tokens=1))
    assert timed_out.status_code == 504
    assert (records[0].completion_tokens, records[0].cost_usd > 0) == (
        (50, True) if received else (0, False)
    )
    assert again.status_code == (429 if received else 200)


@pytest.mark.parametrize("route", ["paid", "auto"])
def test_a_remote_answer_that_broke_off_after_it_began_is_billed(
    tmp_path: Path, route: str
) -> None:
    """Billed upstream, it was logged at $0 unless the client was reading it as a stream
    (an answer not streamed, `n` > 1 streamed for the gateway, a fallback answering after it);
    an answer not streamed is written to the end: billed as the budget's hold."""
    paid = {
        "id": "paid",
        "tier": "cloud",
        "backend": "fake",
        "input_cost_per_1m": 1000.0,
        "output_cost_per_1m": 2000.0,
    }
    tiny = {"id": "tiny", "tier": "edge", "backend": "fake"}
    settings = fake_settings(tmp_path, models=[tiny, paid], privacy={"enabled": False})
    client, gateway = fake_client(settings)
    broke = UpstreamError("paid: upstream answer broke off")
    broke.received = True
    fake_backend(gateway, "paid").queue(broke, UpstreamError("paid: upstream answered 500"))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    headers = {"x-smallfirst-route": "cloud"}
    with client:
        for _ in range(2):  # broken off, then refused
            body = chat_body(route, max_tokens=50)
            client.post("/v1/chat/completions", json=body, headers=headers)
    broken, refused = records
    assert broken.cost_usd > 0
    assert refused.cost_usd == 0
    if route == "paid":  # the failed request's row has the tokens it was billed
        assert (broken.prompt_tokens > 0, broken.completion_tokens) == (True, 50)
        expected = (broken.prompt_tokens * 1000.0 + 50 * 2000.0) / 1e6
        assert broken.cost_usd == pytest.approx(expected)


def _counting_as_a_local_engine(backend: FakeBackend, prompt_tokens: int) -> list[Usage]:
    """The fake counts each answer's tokens as a local engine does (`usage_so_far`): its
    prompt's, then each piece as it is written. Returns the answers' counts."""
    counts: list[Usage] = []
    answer = backend.stream

    async def counted(request: GenerateRequest) -> AsyncIterator[Chunk]:
        so_far = Usage(prompt_tokens=prompt_tokens)
        counts.append(so_far)
        call = counting.get()
        if call is not None:
            call.add(lambda: so_far)
        async for chunk in answer(request):
            so_far.completion_tokens += bool(chunk.text)
            yield chunk

    _answering_by(backend, counted)
    return counts


def _answering_by(
    backend: FakeBackend, stream: Callable[[GenerateRequest], AsyncIterator[Chunk]]
) -> None:
    """The fake answers by `stream`, whole answers too (collected from it)."""

    async def whole(request: GenerateRequest) -> Completion:
        return completion_from_chunks([c async for c in stream(request)], with_logprobs=False)

    backend.stream = stream  # type: ignore[method-assign]
    backend.complete = whole  # type: ignore[method-assign]


@pytest.mark.parametrize(("stream", "n"), [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_a_local_answer_left_by_its_client_is_logged_with_the_tokens_its_engine_counted(
    tmp_path: Path, stream: bool, n: int
) -> None:
    """A local model knows the prompt's tokens and those it wrote before its client left:
    a stream was logged at 4 characters a token (prompt 10 for the bundled model's 38), and
    an answer not streamed (or `n` > 1) with no tokens at all; then with its tokens but at $0
    (a stream, at its prices) when the model has prices."""
    prices = {"input_cost_per_1m": 1000.0, "output_cost_per_1m": 2000.0}
    slow = {"id": "slow", "tier": "edge", "backend": "fake", "replies": [SLOW_REPLY], **prices}
    settings = fake_settings(
        tmp_path, models=[slow | {"token_delay_s": 0.25}], privacy={"enabled": False}
    )
    client, gateway = fake_client(settings)
    counts = _counting_as_a_local_engine(fake_backend(gateway, "slow"), prompt_tokens=38)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        assert client.portal is not None
        body = chat_body("slow", stream=stream, n=n)
        client.portal.call(_post_then_leave, client.app, body, 0.6)  # 2 pieces each
    (record,) = records
    written = sum(usage.completion_tokens for usage in counts)
    assert (len(counts), written > 0) == (n, True)
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (499, 38, written)
    assert record.cost_usd == pytest.approx((38 * 1000.0 + written * 2000.0) / 1e6)


def test_a_stream_whose_rendering_fails_is_logged_as_failed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StreamingResponse runs its background task (which closed the answer) only after a body
    that ended well: a renderer that raised mid-stream left the answer open, its model writing
    on for nobody, its budget hold kept, and its row written (as a 499) only when the
    generator was collected."""
    from smallfirst.server.render import ChunkRenderer

    paid = {
        "id": "paid",
        "tier": "cloud",
        "backend": "fake",
        "replies": [SLOW_REPLY],
        "token_delay_s": 0.01,
        "output_cost_per_1m": 8.0,
    }
    budget = {"budget": {"daily_usd": 1.0}}  # the hold ($1.6 for 200,000 tokens) is more
    settings = fake_settings(tmp_path, models=[paid], routing=budget, privacy={"enabled": False})
    client, gateway = fake_client(settings)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    rendered = ChunkRenderer.events
    chunks_rendered: list[Chunk] = []

    def third_fails(self: ChunkRenderer, chunk: Chunk) -> list[dict[str, Any]]:
        chunks_rendered.append(chunk)
        if len(chunks_rendered) == 3:
            raise RuntimeError("a renderer's bug")
        return rendered(self, chunk)

    monkeypatch.setattr(ChunkRenderer, "events", third_fails)
    body = chat_body("paid", stream=True, max_tokens=200_000)
    with client:
        assert client.portal is not None
        with pytest.raises(RuntimeError, match="a renderer's bug"):
            client.portal.call(_post_then_leave, client.app, body, 30.0)
        logged_at_once = [r.status for r in records]
        open_after = fake_backend(gateway, "paid").closed_early
        spent = gateway.spend.exhausted(None)
    assert logged_at_once == [500]
    assert open_after == 1  # its model stopped
    assert spent is None  # its hold was released


async def test_the_servers_cancel_landing_with_the_clients_leaving_is_not_swallowed() -> None:
    """The watcher's cancel was taken back without looking whether another was pending
    (`Task.uncancel` returns how many remain): a shutdown's cancel arriving in the same turn
    as the disconnect was dropped, and the handler went on to answer 499."""
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    handler = asyncio.ensure_future(unless_client_leaves(request, asyncio.sleep(60)))
    await asyncio.sleep(WATCH_AFTER_S + 0.05)  # watched for the disconnect by now
    left.set()  # the client leaves...
    handler.cancel("the server is shutting down")  # ...as the server's grace period ends
    await asyncio.gather(handler, return_exceptions=True)
    assert handler.cancelled()


def _waiting_for_a_slot_forever(backend: FakeBackend) -> None:
    """The fake tells the call it waits for a slot (as the slot scheduler does: no counts
    yet), and no slot comes."""

    async def queued(request: GenerateRequest) -> AsyncIterator[Chunk]:
        call = counting.get()
        assert call is not None
        call.add(lambda: None)
        await asyncio.Event().wait()
        yield Chunk(text="never")

    _answering_by(backend, queued)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_while_queued_for_a_slot_is_no_answer_of_the_model(
    tmp_path: Path, stream: bool
) -> None:
    """Its model never read it: a 499 with no tier and no answering model, counted with the
    failures (`stats`), not as the local tier's answer (it was, with 0 tokens)."""
    settings = fake_settings(tmp_path, models=[{"id": "busy", "tier": "edge", "backend": "fake"}])
    client, gateway = fake_client(settings)
    _waiting_for_a_slot_forever(fake_backend(gateway, "busy"))
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        assert client.portal is not None
        client.portal.call(_post_then_leave, client.app, chat_body("busy", stream=stream), 0.3)
    (record,) = records
    assert (record.status, record.model_answered, record.tier) == (499, None, None)
    assert not record.answered
    assert record.route_reason  # why it went to `busy` is still told
