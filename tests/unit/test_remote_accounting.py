"""What a call to an OpenAI-compatible upstream is billed and counted when it ends early, read
back from the request log and /metrics of a gateway whose model is a real remote backend
pointed at a scripted server on loopback. The rule follows the backend, not the tier: an
on-prem server (llama.cpp's, vLLM) is billed as the cloud is, at its own prices."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from anyio.from_thread import start_blocking_portal
from prometheus_client.parser import text_string_to_metric_families

from smallfirst.logs import RequestRecord
from tests.helpers import chat_body, fake_client, fake_settings, until
from tests.unit.test_client_disconnect import _post_then_leave

MODEL = "upstream"
MAX_TOKENS = 50
PRICED = {"input_cost_per_1m": 1000.0, "output_cost_per_1m": 2000.0}
FREE = {"input_cost_per_1m": 0.0, "output_cost_per_1m": 0.0}
REFUSED = "refused"
UNAVAILABLE = "unavailable"


class Upstream:
    """An OpenAI-compatible server that never finishes an answer: it holds the call open (its
    client leaves or times out), or `broken`, writes part of it and drops the connection. The
    prompt REFUSED it refuses at once; UNAVAILABLE it answers with a 503 that asks for a retry
    in 5 s."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken
        self.has_a_call = threading.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("prompt") == REFUSED:
            return web.json_response({"error": {"message": "no"}}, status=400)
        if _prompt(body) == UNAVAILABLE:
            self.has_a_call.set()
            error = {"error": {"message": "try later"}}
            return web.json_response(error, status=503, headers={"Retry-After": "5"})
        stream = bool(body.get("stream"))
        self.has_a_call.set()
        response = web.StreamResponse(headers={"Content-Length": "5000"} if not stream else {})
        await response.prepare(request)
        if self.broken:
            await response.write(b'{"choices": [{"mess')
            assert request.transport is not None
            request.transport.close()
            return response
        await asyncio.sleep(30)  # past any client's patience here
        return response


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[-1].get("content"))


class Handles(Protocol):
    async def handle(self, request: web.Request) -> web.StreamResponse: ...


@contextmanager
def serving(upstream: Handles) -> Iterator[str]:
    """`upstream` listening on loopback (in a thread of its own); its base URL."""
    app = web.Application()
    app.router.add_post("/v1/{path:.*}", upstream.handle)
    with start_blocking_portal() as portal:
        server = TestServer(app, host="127.0.0.1")
        portal.call(server.start_server)
        try:
            yield str(server.make_url("/v1"))
        finally:
            portal.call(server.close)


def remote_model(
    base_url: str, tier: str, prices: dict[str, float], **extra: Any
) -> dict[str, Any]:
    return {
        "id": MODEL,
        "tier": tier,
        "backend": "openai_compat",
        "base_url": base_url,
        "max_retries": 0,
        **prices,
        **extra,
    }


def ended_call(
    tmp_path: Path, model: dict[str, Any], upstream: Upstream, body: dict[str, Any], leaves: bool
) -> tuple[RequestRecord, str]:
    """The request log's row of the one call `body` (its client leaving once the upstream
    has it, if `leaves`), and /metrics after it."""
    settings = fake_settings(tmp_path, models=[model], privacy={"enabled": False})
    client, gateway = fake_client(settings)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)

    async def upstream_has_it() -> None:
        assert await asyncio.to_thread(upstream.has_a_call.wait, 10)  # a hang guard

    with client:
        assert client.portal is not None
        if leaves:
            client.portal.call(
                partial(_post_then_leave, client.app, body, 0.0, until=upstream_has_it)
            )
        else:
            client.post("/v1/chat/completions", json=body)
        metrics = client.get("/metrics").text
    (record,) = records
    return record, metrics


def counted(metrics: str, name: str, **labels: str) -> float:
    """The sample `name` of /metrics for MODEL with `labels` (0 when there is none)."""
    wanted = {"model": MODEL, **labels}
    found = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name and sample.labels == wanted
    ]
    return sum(found)


def billed(record: RequestRecord, prices: dict[str, float]) -> float:
    prompt, answer = record.prompt_tokens, record.completion_tokens
    return (prompt * prices["input_cost_per_1m"] + answer * prices["output_cost_per_1m"]) / 1e6


TIERS_AND_PRICES = [
    pytest.param("cloud", PRICED, id="cloud"),
    pytest.param("onprem", PRICED, id="onprem, priced"),
    pytest.param("onprem", FREE, id="onprem, free"),
]


@pytest.mark.parametrize(("tier", "prices"), TIERS_AND_PRICES)
@pytest.mark.parametrize(
    ("case", "status", "answer_tokens"),
    [
        ("left, not streamed", 499, MAX_TOKENS),  # written to the end all the same
        ("left, streamed", 499, 0),  # stops with its connection: the prompt was read
        ("timed out", 504, MAX_TOKENS),
        ("broke off", 502, MAX_TOKENS),
    ],
)
def test_a_remote_call_ended_early_is_billed_the_same_estimate_on_any_tier(
    tmp_path: Path,
    tier: str,
    prices: dict[str, float],
    case: str,
    status: int,
    answer_tokens: int,
) -> None:
    """An on-prem model behind HTTP was billed as a local engine's (0 tokens, $0: nothing here
    counts its tokens), where the same call to the cloud was billed the budget's estimate;
    its cost follows its own prices (an on-prem server may be free)."""
    upstream = Upstream(broken=case == "broke off")
    with serving(upstream) as base_url:
        timeout = {"read_timeout_s": 0.2} if case == "timed out" else {}
        model = remote_model(base_url, tier, prices, **timeout)
        body = chat_body(MODEL, stream=case == "left, streamed", max_tokens=MAX_TOKENS)
        record, metrics = ended_call(tmp_path, model, upstream, body, leaves="left" in case)
    assert (record.status, record.tier) == (status, tier)
    assert record.prompt_tokens > 0
    assert record.completion_tokens == answer_tokens
    assert record.cost_usd == pytest.approx(billed(record, prices))
    assert counted(metrics, "smallfirst_tokens_total", tier=tier, direction="input") == (
        record.prompt_tokens
    )
    assert counted(metrics, "smallfirst_cost_usd_total", tier=tier) == pytest.approx(
        record.cost_usd
    )


def test_a_remote_call_the_gateway_stops_counts_as_cancelled_as_a_local_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's prompt stopped because another failed ends its call before its answer ended,
    as a local model's slot is freed for it: both count it in
    smallfirst_generations_cancelled_total."""
    upstream = Upstream()
    with serving(upstream) as base_url:
        model = remote_model(base_url, "onprem", FREE)
        settings = fake_settings(tmp_path, models=[model], privacy={"enabled": False})
        client, gateway = fake_client(settings)
        monkeypatch.setattr(gateway, "batch_concurrency", lambda model_id: 2)  # both at once
        body = {"model": MODEL, "prompt": ["held", REFUSED]}
        with client:
            refused = client.post("/v1/completions", json=body)
            metrics = client.get("/metrics").text
    assert refused.status_code == 400
    assert counted(metrics, "smallfirst_generations_cancelled_total") == 1


@pytest.mark.parametrize("stream", [False, True], ids=["not streamed", "streamed"])
@pytest.mark.parametrize("waiting_for", ["a connection", "a retry"])
def test_a_remote_call_left_before_it_was_sent_is_not_billed_as_a_local_queued_one(
    tmp_path: Path, waiting_for: str, stream: bool
) -> None:
    """Its client left while it waited for the model's one connection (`max_concurrency`,
    held by another call), or for the retry its upstream's 503 asked for: no upstream had
    it. It was billed the estimate of a call the upstream had read; now it is logged as a
    local model's call that left its queue is, a 499 no tier read, 0 tokens and $0, and
    counted among the cancelled generations as that one is. The call holding the
    connection, which the upstream had, is still billed."""
    upstream = Upstream()
    with serving(upstream) as base_url:
        model = remote_model(base_url, "cloud", PRICED, max_concurrency=1, max_retries=1)
        settings = fake_settings(tmp_path, models=[model], privacy={"enabled": False})
        client, gateway = fake_client(settings)
        backend = gateway.backends[MODEL]
        records: list[RequestRecord] = []
        gateway.ledger.add_observer(records.append)

        async def waiting() -> None:
            if waiting_for == "a connection":
                await until(lambda: backend.queue_depth() == 1)
            else:  # the 503 is read: the retry's wait begins
                await until(lambda: bool(backend.upstream_errors()))

        async def one_waits_and_leaves() -> None:
            holder_leaves = asyncio.Event()
            holder = None
            if waiting_for == "a connection":
                held = chat_body(MODEL, max_tokens=MAX_TOKENS)
                post = _post_then_leave(client.app, held, 0.0, until=holder_leaves.wait)
                holder = asyncio.ensure_future(post)
                assert await asyncio.to_thread(upstream.has_a_call.wait, 10)  # a hang guard
            asked = "Hi there" if waiting_for == "a connection" else UNAVAILABLE
            body = chat_body(MODEL, max_tokens=MAX_TOKENS, stream=stream)
            body["messages"] = [{"role": "user", "content": asked}]
            await _post_then_leave(client.app, body, 0.0, until=waiting)
            holder_leaves.set()
            if holder is not None:
                await holder

        with client:
            assert client.portal is not None
            client.portal.call(one_waits_and_leaves)
            metrics = client.get("/metrics").text
    waited, *holders = records
    assert (waited.status, waited.tier, waited.model_answered) == (499, None, None)
    assert (waited.prompt_tokens, waited.completion_tokens, waited.cost_usd) == (0, 0, 0.0)
    assert [(r.status, r.tier, r.completion_tokens) for r in holders] == [
        (499, "cloud", MAX_TOKENS)
    ] * len(holders)
    assert counted(metrics, "smallfirst_cost_usd_total", tier="cloud") == pytest.approx(
        sum(r.cost_usd for r in holders)
    )
    assert counted(metrics, "smallfirst_generations_cancelled_total") == len(records)
