"""Skipping a model that keeps failing: the breaker per model, and the gateway using it."""

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.openai_wire import upstream_error
from smallfirst.completions import Chunk
from smallfirst.config import CircuitBreakerConfig
from smallfirst.errors import ModelUnavailable, QueueFull, UpstreamError
from smallfirst.logs import RequestRecord
from smallfirst.routing.health import ModelHealth
from smallfirst.service import Gateway
from smallfirst.types import GenerateRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_failures_in_a_row_skip_a_model_for_the_cooldown() -> None:
    clock = Clock()
    health = ModelHealth(CircuitBreakerConfig(failures=3, cooldown_s=30), clock)
    health.failed("m", "boom")
    health.failed("m", "boom")
    assert health.cooling_down_s("m") == 0
    health.failed("m", "refused")
    assert health.cooling_down_s("m") == 30
    assert (
        health.describe("m") == "m skipped for 30 s more after 3 failures in a row (last: refused)"
    )
    clock.now += 30
    assert health.cooling_down_s("m") == 0  # tried again
    health.failed("m", "refused")
    assert health.cooling_down_s("m") == 60  # one more failure: twice as long


def test_failures_of_requests_already_under_way_do_not_extend_the_cooldown() -> None:
    clock = Clock()
    health = ModelHealth(CircuitBreakerConfig(failures=1, cooldown_s=30), clock)
    for _ in range(5):
        health.failed("m", "refused")
    assert health.cooling_down_s("m") == 30


def test_a_success_closes_the_breaker_and_the_cooldown_is_capped() -> None:
    clock = Clock()
    config = CircuitBreakerConfig(failures=1, cooldown_s=100, max_cooldown_s=150)
    health = ModelHealth(config, clock)
    health.failed("m", "x")
    clock.now += 100
    health.failed("m", "x")
    assert health.cooling_down_s("m") == 150
    clock.now += 150
    health.succeeded("m")
    health.failed("other", "x")
    assert health.snapshot() == {"other": 100}
    health.failed("m", "x")
    assert health.cooling_down_s("m") == 100  # a fresh start after the success


def test_a_success_of_a_request_begun_before_the_breaker_opened_leaves_it_open() -> None:
    """A long stream that ends well after the model began failing closed the breaker, and
    every request paid the dead upstream's timeouts again."""
    clock = Clock()
    health = ModelHealth(CircuitBreakerConfig(failures=1, cooldown_s=30), clock)
    health.failed("m", "refused")
    clock.now += 10
    health.succeeded("m")
    assert health.cooling_down_s("m") == 20


def test_failures_zero_never_skips() -> None:
    health = ModelHealth(CircuitBreakerConfig(failures=0))
    for _ in range(10):
        health.failed("m", "x")
    assert health.cooling_down_s("m") == 0


def stopped_clock_client(tmp_path: Path) -> tuple[TestClient, Gateway]:
    """A gateway whose breakers' clock stands still: a model skipped stays skipped."""
    settings = fake_settings(tmp_path)
    return fake_client(settings, ModelHealth(settings.routing.circuit_breaker, Clock()))


def test_the_gateway_stops_calling_a_dead_tier_and_falls_back_at_once(tmp_path: Path) -> None:
    client, gateway = stopped_clock_client(tmp_path)
    big = fake_backend(gateway, "big")
    big.queue(*[UpstreamError("big: cannot reach upstream (refused)") for _ in range(3)])
    to_cloud = {"x-smallfirst-route": "cloud"}
    with client:
        for _ in range(3):
            failed_over = client.post(
                "/v1/chat/completions", json=chat_body("auto"), headers=to_cloud
            )
            assert failed_over.json()["model"] == "tiny"
            assert failed_over.headers["x-smallfirst-escalations"] == "big"
        calls_to_big = len(big.requests)

        skipped = client.post("/v1/chat/completions", json=chat_body("auto"), headers=to_cloud)
        named = client.post("/v1/chat/completions", json=chat_body("big"))
        metrics = client.get("/metrics").text
        dashboard = client.get("/dashboard").text

    assert len(big.requests) == calls_to_big == 3
    assert skipped.json()["model"] == "tiny"
    assert "x-smallfirst-escalations" not in skipped.headers
    assert (
        "big skipped for 30 s more after 3 failures in a row"
        in skipped.json()["smallfirst"]["reason"]
    )
    assert named.status_code == 503
    assert named.headers["retry-after"] == "30"
    assert "cannot reach upstream" in named.json()["error"]["message"]
    cooldown = next(
        line
        for line in metrics.splitlines()
        if line.startswith('smallfirst_model_cooldown_seconds{model="big"}')
    )
    assert cooldown.endswith(" 30.0")
    assert "<li>big skipped for 30 s more after 3 failures in a row" in dashboard


def test_an_upstreams_own_words_are_told_only_to_the_request_they_answer(tmp_path: Path) -> None:
    """An upstream's error may quote the request (values and all, where the policy let them
    go): that text went into the route reason in
    the request log, and as the breaker's "last:" into other clients' 503s and onto the
    dashboard."""
    settings = fake_settings(tmp_path, privacy={"tier_policy": {"cloud": "allow"}})
    client, gateway = fake_client(settings, ModelHealth(settings.routing.circuit_breaker, Clock()))
    quoted = "invalid input: 'I am Ana Ruiz, ana@flux.io'"
    fake_backend(gateway, "big").queue(*[upstream_error("big", 500, {}, quoted) for _ in range(3)])
    to_cloud = {"x-smallfirst-route": "cloud"}
    with client:
        own = client.post("/v1/chat/completions", json=chat_body("big"))
        for _ in range(2):
            client.post("/v1/chat/completions", json=chat_body("auto"), headers=to_cloud)
        other = client.post("/v1/chat/completions", json=chat_body("big"))
        dashboard = client.get("/dashboard").text
    gateway.request_log.close()
    reasons = [
        reason
        for (reason,) in sqlite3.connect(tmp_path / "requests.db").execute(
            "SELECT route_reason FROM requests"
        )
    ]
    assert quoted in own.json()["error"]["message"]
    assert other.status_code == 503
    assert "(last: big: upstream answered 500)" in other.json()["error"]["message"]
    assert "big failed (big: upstream answered 500)" in "".join(reasons)
    for shown in (other.text, dashboard, *reasons):
        assert "ana@flux.io" not in shown


def test_an_upstreams_words_in_a_broken_stream_are_not_told_to_the_next_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gateway = stopped_clock_client(tmp_path)
    quoted = "cannot go on with 'I am Ana Ruiz, ana@flux.io'"

    async def broken(request: GenerateRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text="Hel")
        raise upstream_error("big", None, {}, quoted)

    monkeypatch.setattr(fake_backend(gateway, "big"), "stream", broken)
    with client:
        for _ in range(3):
            streamed = client.post("/v1/chat/completions", json=chat_body("big", stream=True))
            assert quoted in streamed.text
        skipped = client.post("/v1/chat/completions", json=chat_body("big", stream=True))
    assert skipped.status_code == 503
    assert "(last: big: upstream sent an error)" in skipped.text


def test_an_upstream_that_said_when_to_come_back_is_skipped_no_longer() -> None:
    clock = Clock()
    health = ModelHealth(CircuitBreakerConfig(failures=1, cooldown_s=30), clock)
    health.failed("m", "queue full", retry_after_s=4)
    assert health.cooling_down_s("m") == 4  # was 30
    clock.now += 4
    health.failed("m", "queue full", retry_after_s=90)
    assert health.cooling_down_s("m") == 60  # never longer than its own cooldown


def test_a_rate_limiting_upstreams_retry_after_bounds_its_skip(tmp_path: Path) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    limited = QueueFull("limited", code="upstream_rate_limited")
    limited.retry_after_s = 2
    fake_backend(gateway, "big").queue(*[limited for _ in range(3)])
    with client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 429
    assert 0 < gateway.health.cooling_down_s("big") <= 2


def test_a_busy_local_model_is_not_skipped_but_a_rate_limiting_upstream_is(
    tmp_path: Path,
) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    big = fake_backend(gateway, "big")
    big.queue(*[QueueFull("big is busy") for _ in range(3)])
    with client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 429
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 200
        big.queue(*[QueueFull("limited", code="upstream_rate_limited") for _ in range(3)])
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 429
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 503


def test_streams_that_keep_breaking_off_open_the_breaker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that began counted as a success at its first piece, which reset the count:
    an upstream cutting every stream after one piece was never skipped."""
    client, gateway = stopped_clock_client(tmp_path)

    async def cut_off(request: GenerateRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text="Hel")
        raise UpstreamError("big: upstream stream broke off")

    monkeypatch.setattr(fake_backend(gateway, "big"), "stream", cut_off)
    records: list[RequestRecord] = []
    gateway.ledger.add_observer(records.append)
    with client:
        for _ in range(3):
            streamed = client.post("/v1/chat/completions", json=chat_body("big", stream=True))
            assert "upstream stream broke off" in streamed.text
        skipped = client.post("/v1/chat/completions", json=chat_body("big", stream=True))
    assert skipped.status_code == 503
    assert "after 3 failures in a row (last: big: upstream stream broke off)" in skipped.text
    # the rows of the streams cut off name who answered them in part (they named no one)
    assert [(r.status, r.model_answered) for r in records[:3]] == [(502, "big")] * 3


def test_a_stream_that_ends_well_closes_the_breaker(
    tmp_path: Path,
) -> None:
    client, gateway = stopped_clock_client(tmp_path)
    gateway.health.failed("big", "x")
    gateway.health.failed("big", "x")
    with client:
        assert (
            client.post("/v1/chat/completions", json=chat_body("big", stream=True)).status_code
            == 200
        )
    gateway.health.failed("big", "x")
    assert gateway.health.cooling_down_s("big") == 0  # one failure since the success


def test_a_failed_request_lists_only_the_models_tried_before_the_last(tmp_path: Path) -> None:
    """A model asked for by id that failed was logged as its own escalation, and `stats`
    counted it as escalated or fallen back."""
    client, gateway = fake_client(fake_settings(tmp_path))
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500"))
    fake_backend(gateway, "tiny").queue(UpstreamError("tiny: broken"))
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500"))
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 502
        to_cloud = {"x-smallfirst-route": "cloud"}
        both = client.post("/v1/chat/completions", json=chat_body("auto"), headers=to_cloud)
        assert both.status_code == 502
        client.get("/metrics")  # the log writer catches up in the background
    gateway.request_log.close()
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT model_answered, escalations, status FROM requests ORDER BY created_at"
    )
    assert [row[1:] for row in rows] == [(None, 502), ("big", 502)]


def test_a_cascade_whose_small_model_is_skipped_lists_no_escalation(tmp_path: Path) -> None:
    """A model skipped is not tried: the cascade listed its small model as escalated from
    (header, log row, `smallfirst_escalations_total`) on every request of its cooldown."""
    settings = fake_settings(tmp_path, routing={"router": "cascade"})
    client, gateway = fake_client(settings, health=ModelHealth(settings.routing.circuit_breaker))
    tiny = fake_backend(gateway, "tiny")
    tiny.queue(*[ModelUnavailable("tiny: cannot load") for _ in range(3)])
    with client:
        failed = [client.post("/v1/chat/completions", json=chat_body("auto")) for _ in range(3)]
        skipped = client.post("/v1/chat/completions", json=chat_body("auto"))
        metrics = client.get("/metrics").text
    assert [r.headers["x-smallfirst-escalations"] for r in failed] == ["tiny"] * 3
    assert skipped.json()["model"] == "big"
    assert "x-smallfirst-escalations" not in skipped.headers
    assert skipped.json()["smallfirst"]["escalations"] == []
    assert "escalated: tiny skipped for" in skipped.json()["smallfirst"]["reason"]
    assert 'smallfirst_escalations_total{model="tiny"} 3.0' in metrics
