"""`/metrics` counts what `smallfirst stats` counts: the same money, the same answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from smallfirst.answers import RequestContext, RouteInfo
from smallfirst.backends.fake import FakeBackend
from smallfirst.completions import ModelInfo, Usage
from smallfirst.config import BaselineConfig, CircuitBreakerConfig, FakeModel
from smallfirst.errors import ShuttingDown, UpstreamError
from smallfirst.logs import RequestRecord
from smallfirst.request_records import Ending, answered_record
from smallfirst.routing.health import ModelHealth
from smallfirst.server.metrics import Metrics
from smallfirst.types import ChatRequest
from tests.unit.test_openai_compat import ANSWER, REQUEST, finished, sse, upstream

Key = tuple[str, frozenset[tuple[str, str]]]


def samples(metrics: Metrics) -> dict[Key, float]:
    text = metrics.render().decode()
    return {
        key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> Key:
    return name, frozenset(labels.items())


def row(**fields: Any) -> RequestRecord:
    base: dict[str, Any] = {"id": "r", "created_at": 0.0, "endpoint": "chat"}
    return RequestRecord(**(base | fields))


def new_metrics() -> Metrics:
    return Metrics({}, ModelHealth(CircuitBreakerConfig()), "cloud")


def test_failed_requests_paid_attempts_count_as_in_stats() -> None:
    """A failed request's cost (a cut upstream stream, a cascade draft before a 400) was in
    `smallfirst stats` and missing here, so the two told different savings."""
    metrics = new_metrics()
    paid = {"prompt_tokens": 9, "cost_usd": 0.009, "baseline_cost_usd": 0.027}
    cut = row(model_requested="big", tier="cloud", status=502, **paid)
    metrics.observe(cut)
    seen = samples(metrics)
    big = {"model": "big", "tier": "cloud"}
    assert seen[key("smallfirst_cost_usd_total", **big)] == 0.009
    assert seen[key("smallfirst_baseline_cost_usd_total", **big)] == 0.027
    assert seen[key("smallfirst_tokens_total", **big, direction="input")] == 9
    assert seen[key("smallfirst_cost_saved_usd")] == pytest.approx(0.018)
    assert key("smallfirst_request_latency_seconds_count", **big) not in seen  # not answered


def test_a_cut_stream_is_booked_under_the_model_that_answered_and_its_route() -> None:
    """It was booked under model "auto" and left out of the routing split."""
    tiny = ModelInfo(id="tiny", tier="edge", backend="fake", context_length=100)
    asked = ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
    )
    route = RouteInfo(model=tiny, router="rules", reason="short")
    cut = answered_record(
        asked,
        RequestContext(endpoint="chat"),
        route,
        Ending(Usage(completion_tokens=2), status=499),
        BaselineConfig(model="big", input_cost_per_1m=1, output_cost_per_1m=2),
        keep_text=False,
    )
    assert cut.model_answered == "tiny"
    metrics = new_metrics()
    routed = {"model_requested": "auto", "tier": "edge", "router": "rules"}
    metrics.observe(row(**routed, model_answered="tiny", completion_tokens=3))
    metrics.observe(cut)
    metrics.observe(row(model_requested="auto", status=499))  # left before routing
    seen = samples(metrics)
    labels = {"model": "tiny", "tier": "edge"}
    assert seen[key("smallfirst_tokens_total", **labels, direction="output")] == 5
    assert seen[key("smallfirst_routed_total", router="rules", tier="edge")] == 2
    # the cut stream's time is no answer's: a client stopping early made latency look fast
    assert seen[key("smallfirst_request_latency_seconds_count", **labels)] == 1
    assert seen[key("smallfirst_observed_strong_share")] == 0.0
    left = key("smallfirst_requests_total", model="unknown", tier="none", status="499")
    assert seen[left] == 1


def test_overrides_stay_out_of_the_observed_strong_share() -> None:
    """QA: with `max_strong_share: 0` the router sent none strong, yet the gauge read 0.5
    once clients had forced the cloud with `x-smallfirst-route`."""
    metrics = new_metrics()
    for tier, router in [("edge", "rules"), ("cloud", "override"), ("cloud", "override")]:
        metrics.observe(row(model_requested="auto", model_answered="m", tier=tier, router=router))
    seen = samples(metrics)
    assert seen[key("smallfirst_observed_strong_share")] == 0.0
    assert seen[key("smallfirst_routed_total", router="override", tier="cloud")] == 2


def test_a_refusal_of_a_configured_model_is_counted_under_its_id() -> None:
    """A budget's 429 for `big` asked for by id was counted as model "unknown", with the
    404s for ids nobody configured."""
    big = FakeBackend(FakeModel(id="big", tier="cloud", backend="fake"))
    metrics = Metrics({"big": big}, ModelHealth(CircuitBreakerConfig()), "cloud")
    metrics.observe(row(model_requested="big", status=429))
    metrics.observe(row(model_requested="made-up", status=404))
    seen = samples(metrics)
    assert seen[key("smallfirst_requests_total", model="big", tier="none", status="429")] == 1
    assert seen[key("smallfirst_requests_total", model="unknown", tier="none", status="404")] == 1


def test_an_answer_of_minutes_falls_in_a_latency_bucket() -> None:
    """The last bucket was 120 s: a 7-minute local answer was only in +Inf, and quantiles
    over such answers read as 120 s."""
    metrics = new_metrics()
    metrics.observe(row(model_requested="tiny", tier="edge", latency_ms=420_000.0))
    seen = samples(metrics)
    labels = {"model": "tiny", "tier": "edge"}
    assert seen[key("smallfirst_request_latency_seconds_bucket", **labels, le="600.0")] == 1


def test_a_remote_models_failed_calls_are_counted_by_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = FakeBackend(FakeModel(id="big", tier="cloud", backend="fake"))
    monkeypatch.setattr(big, "upstream_errors", lambda: {"timeout": 2, "5xx": 1})
    seen = samples(Metrics({"big": big}, ModelHealth(CircuitBreakerConfig()), "cloud"))
    assert seen[key("smallfirst_upstream_errors_total", model="big", kind="timeout")] == 2
    assert seen[key("smallfirst_upstream_errors_total", model="big", kind="5xx")] == 1


async def test_a_remote_models_answers_its_clients_left_count_as_cancelled() -> None:
    """A remote model said 0 however many of its answers clients left (its upstream stopped
    answering each as its connection closed); answers that ended are not counted."""
    begun = sse([{"choices": [{"delta": {"content": "Once"}, "finish_reason": None}]}])
    ended = sse([{"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}])

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["messages"][0]["content"] == "short":
            short = ended + b"data: [DONE]\n\n" if body.get("stream") else json.dumps(ANSWER)
            return web.Response(body=short)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(begun)
        await asyncio.sleep(30)  # a long answer: its client leaves before it ends
        return response

    short = ChatRequest.model_validate(
        {"model": "cloud", "messages": [{"role": "user", "content": "short"}]}
    )
    async with upstream(handle) as backend:
        cut = backend.stream(REQUEST)
        await anext(cut)
        await cut.aclose()
        waiting = asyncio.create_task(backend.complete(REQUEST))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert finished([c async for c in backend.stream(short)]) == "stop"
        assert (await backend.complete(short)).text == "hello"
        seen = samples(Metrics({"big": backend}, ModelHealth(CircuitBreakerConfig()), "cloud"))
    assert seen[key("smallfirst_generations_cancelled_total", model="big")] == 2


async def test_a_remote_models_calls_the_shutdown_ended_count_as_cancelled_as_a_local_ones() -> (
    None
):
    """A local model counts the answers its shutdown ends, in a slot or queued for one; a
    remote one left them out: a stream being read, an answer being read whole and a call
    waiting for a connection said 0. An answer that ended is not counted."""
    begun = sse([{"choices": [{"delta": {"content": "Once"}, "finish_reason": None}]}])
    answering: list[web.Request] = []
    both_answering = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["messages"][0]["content"] == "short":
            return web.json_response(ANSWER)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if body.get("stream"):
            await response.write(begun)
        answering.append(request)
        if len(answering) == 2:
            both_answering.set()
        await asyncio.sleep(30)  # a long answer: the shutdown ends it
        return response

    short = ChatRequest.model_validate(
        {"model": "cloud", "messages": [{"role": "user", "content": "short"}]}
    )
    async with upstream(handle, max_concurrency=2) as backend:
        assert (await backend.complete(short)).text == "hello"
        read = backend.stream(REQUEST)
        await anext(read)
        whole = asyncio.ensure_future(backend.complete(REQUEST))
        await asyncio.wait_for(both_answering.wait(), 10)
        waiting = asyncio.ensure_future(backend.complete(REQUEST))
        await asyncio.sleep(0)  # it takes its turn for a connection
        assert backend.queue_depth() == 1  # both connections are taken
        backend.end_answers(ShuttingDown("the server is shutting down; retry"))
        with pytest.raises(ShuttingDown):
            _ = [chunk async for chunk in read]
        for call in (whole, waiting):
            with pytest.raises(ShuttingDown):
                await asyncio.wait_for(call, 5)
        await read.aclose()  # the gateway closes the stream after: not counted again
        seen = samples(Metrics({"big": backend}, ModelHealth(CircuitBreakerConfig()), "cloud"))
    assert seen[key("smallfirst_generations_cancelled_total", model="big")] == 3


async def test_a_remote_call_that_ended_by_itself_or_failed_is_not_counted_cancelled() -> None:
    """Only calls stopped before their answer ended count: not an answer cut at `max_tokens`
    (the cascade's cap is one) whose client left before its usage came, nor a call that
    failed (counted in smallfirst_upstream_errors_total; a fallback answers next)."""
    cut = sse([{"choices": [{"delta": {"content": "Once"}, "finish_reason": "length"}]}])

    async def handle(request: web.Request) -> web.StreamResponse:
        if not (await request.json()).get("stream"):
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(cut)
        await asyncio.sleep(30)  # its usage would come later
        return response

    async with upstream(handle, max_retries=0) as backend:
        stream = backend.stream(REQUEST)
        assert (await anext(stream)).text == "Once"  # its last piece: its finish came with it
        await stream.aclose()
        with pytest.raises(UpstreamError):
            await backend.complete(REQUEST)
        seen = samples(Metrics({"big": backend}, ModelHealth(CircuitBreakerConfig()), "cloud"))
    assert seen[key("smallfirst_upstream_errors_total", model="big", kind="5xx")] == 1
    assert seen[key("smallfirst_generations_cancelled_total", model="big")] == 0
