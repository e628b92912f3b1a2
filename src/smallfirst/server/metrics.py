"""Prometheus metrics, per app (own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from smallfirst.backends import Backend
from smallfirst.config import EMBEDDING_MODEL_IDS
from smallfirst.logs import RequestRecord
from smallfirst.routing.health import ModelHealth

# Up to 10 minutes: a long local answer takes minutes (8,160 tokens took 558 s on the bundled
# model), and above the last bucket a histogram's quantiles read as that bucket.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _BackendState(Collector):
    """Read at scrape time from the backends: queue depth, cancelled generations, the
    cooldown of models skipped after failing (`routing/health.py`), prompt reuse, and the
    local models' slots in use."""

    def __init__(self, backends: Mapping[str, Backend], health: ModelHealth) -> None:
        self._backends = backends
        self._health = health

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "smallfirst_queue_depth", "Requests waiting per model", labels=["model"]
        )
        cancelled = CounterMetricFamily(
            "smallfirst_generations_cancelled",
            "Generations stopped before their answer ended, waiting or under way: their client"
            " went away, or the gateway stopped them (its shutdown; another prompt of their"
            " batch, or another of their n answers, failed)",
            labels=["model"],
        )
        cooldown = GaugeMetricFamily(
            "smallfirst_model_cooldown_seconds",
            "Seconds until a model that kept failing is tried again (0: it is tried)",
            labels=["model"],
        )
        waits = SummaryMetricFamily(
            "smallfirst_queue_wait_seconds",
            "Time local jobs waited for their model's worker (count and sum: the mean wait)",
            labels=["model"],
        )
        reused = CounterMetricFamily(
            "smallfirst_prompt_tokens_reused",
            "Prompt tokens a local model did not evaluate again: kept in a slot's sequence, or"
            " restored from a saved prompt state",
            labels=["model", "source"],
        )
        saved = GaugeMetricFamily(
            "smallfirst_prompt_cache_bytes",
            "Memory held by a local model's saved prompt states",
            labels=["model"],
        )
        slots = GaugeMetricFamily(
            "smallfirst_slots",
            "A local model's slots (answers it decodes together), by state",
            labels=["model", "state"],
        )
        loads = CounterMetricFamily(
            "smallfirst_model_loads",
            "Times a local model was loaded, and unloaded to make room in the memory budget (a"
            " model reloaded for every request: the budget holds it but not with its neighbour)",
            labels=["model", "event"],
        )
        upstream_errors = CounterMetricFamily(
            "smallfirst_upstream_errors",
            "Failed calls to a remote model's upstream, each attempt (retries included), by"
            " kind: timeout, connect, rate_limited, quota, 4xx, 5xx, error_event, broken,"
            " malformed, too_large",
            labels=["model", "kind"],
        )
        skipped = self._health.snapshot()
        for model, backend in self._backends.items():
            depth.add_metric([model], backend.queue_depth())
            cancelled.add_metric([model], backend.cancelled_generations())
            cooldown.add_metric([model], skipped.get(model, 0.0))
            waits.add_metric([model], *backend.queue_wait())
            reuse = backend.prompt_reuse()
            reused.add_metric([model, "context"], reuse.from_context)
            reused.add_metric([model, "saved"], reuse.from_saved)
            saved.add_metric([model], reuse.saved_bytes)
            in_use = backend.slots_in_use()
            if in_use is not None:
                busy, total = in_use
                slots.add_metric([model, "busy"], busy)
                slots.add_metric([model, "free"], total - busy)
            for kind, count in sorted(backend.upstream_errors().items()):
                upstream_errors.add_metric([model, kind], count)
            counts = backend.loads()
            if counts is not None:
                loads.add_metric([model, "load"], counts[0])
                loads.add_metric([model, "unload"], counts[1])
        yield from (depth, cancelled, cooldown, waits, reused, saved, slots, loads, upstream_errors)


class Metrics:
    def __init__(
        self, backends: Mapping[str, Backend], health: ModelHealth, strong_tier: str | None
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call] # the *_created series double the output for no use here
        self.registry = CollectorRegistry()
        labels = ["model", "tier"]
        self.requests = Counter(
            "smallfirst_requests",
            "Requests by model (the answering one; a failed request's, the one asked for),"
            " tier and status",
            [*labels, "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "smallfirst_tokens",
            "Tokens by model, tier and direction",
            [*labels, "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "smallfirst_cost_usd",
            "Cost of requests at configured prices (failed requests' paid attempts included)",
            labels,
            registry=self.registry,
        )
        self.baseline_cost = Counter(
            "smallfirst_baseline_cost_usd",
            "What the same requests would have cost on the baseline model (config `baseline`,"
            " else the strong tier's model), at the same token counts",
            labels,
            registry=self.registry,
        )
        self.saved = Gauge(
            "smallfirst_cost_saved_usd",
            "Baseline cost minus the cost of requests since start",
            registry=self.registry,
        )
        self.latency = Histogram(
            "smallfirst_request_latency_seconds",
            "Whole-request latency of answers that went to the end (not 499s)",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "smallfirst_time_to_first_token_seconds",
            "Time to first streamed token",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.routed = Counter(
            "smallfirst_routed",
            "Requests routed by `model: auto`, by router and answering tier",
            ["router", "tier"],
            registry=self.registry,
        )
        self.escalations = Counter(
            "smallfirst_escalations",
            "Models that failed or were escalated from (cascade, fallback)",
            ["model"],
            registry=self.registry,
        )
        self.pii_events = Counter(
            "smallfirst_pii_events",
            "Requests holding PII, by the action taken (allow, redact, local_only, block)",
            ["action"],
            registry=self.registry,
        )
        self.strong_share = Gauge(
            "smallfirst_observed_strong_share",
            "Share of the router's requests (not overrides) answered by the strong tier since"
            " start",
            registry=self.registry,
        )
        self._strong_tier = strong_tier
        self._model_ids = frozenset(backends).union(EMBEDDING_MODEL_IDS)
        self._series: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._routed_total = 0
        self._routed_strong = 0
        self.registry.register(_BackendState(backends, health))

    def observe(self, record: RequestRecord) -> None:
        # Ids that are no configured model share one label: clients must not mint series.
        asked = record.model_requested
        known = record.tier or asked in self._model_ids
        model = record.model_answered or (asked if known else "unknown")
        tier = record.tier or "none"
        self._child(self.requests, model, tier, str(record.status)).inc()
        if record.pii_action is not None:
            self._child(self.pii_events, record.pii_action).inc()
        for tried in filter(None, (record.escalations or "").split(",")):
            self._child(self.escalations, tried).inc()
        # What was spent counts whether or not the request was answered (a failed request's
        # attempts were paid for), as in `smallfirst stats`.
        if record.prompt_tokens or record.completion_tokens or record.cost_usd:
            self._child(self.tokens, model, tier, "input").inc(record.prompt_tokens)
            self._child(self.tokens, model, tier, "output").inc(record.completion_tokens)
            self._child(self.cost, model, tier).inc(record.cost_usd)
            self._child(self.baseline_cost, model, tier).inc(record.baseline_cost_usd)
            self.saved.inc(record.baseline_cost_usd - record.cost_usd)
        if not record.answered:
            return
        if record.router not in (None, "none"):
            self._child(self.routed, record.router, tier).inc()
        if record.router not in (None, "none", "override"):  # the router's choices only
            self._routed_total += 1
            self._routed_strong += tier == self._strong_tier
            self.strong_share.set(self._routed_strong / self._routed_total)
        if record.status < 400:  # went to the end: a client that left is no fast answer
            self._child(self.latency, model, tier).observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            self._child(self.ttft, model, tier).observe(record.ttft_ms / 1000)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: prometheus-client's lookup takes a lock and
        re-validates the labels on every call, which showed in the per-request profile."""
        key = (id(metric), labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
