"""Latency the gateway adds in front of an OpenAI-compatible upstream.

Upstream: a smallfirst process with a zero-delay fake model. Gateway: a second process whose
`cloud` model forwards to that upstream; a third gateway does the same with the privacy guard
on (a PII scan of every prompt before it may leave for the cloud tier). The same client calls
all of them, interleaved, one request at a time; then, for throughput, 8 client threads call
the upstream and the gateway in alternating one-second windows. Prints JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx

from benchmarks.common import refuse_arguments, running_gateway, summary_ms

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "400"))
THROUGHPUT_SECONDS = int(os.environ.get("BENCH_THROUGHPUT_SECONDS", "3"))
BODY = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}


def timed(client: httpx.Client, url: str, model: str) -> float:
    start = time.perf_counter()
    response = client.post(f"{url}/v1/chat/completions", json={**BODY, "model": model})
    response.raise_for_status()
    return time.perf_counter() - start


def throughput(url: str, model: str, seconds: float, clients: int = 8) -> float:
    def worker(_: int) -> int:
        done = 0
        with httpx.Client(timeout=30) as client:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                timed(client, url, model)
                done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(worker, range(clients)))
    return total / seconds


def interleaved_throughput(direct_url: str, via_url: str) -> tuple[float, float]:
    """Requests/s direct and via the gateway, THROUGHPUT_SECONDS each, in alternating
    one-second windows so that a burst of load on the machine hits both alike."""
    sides = {direct_url: "fake", via_url: "cloud"}
    rps: dict[str, list[float]] = {url: [] for url in sides}
    for window in range(THROUGHPUT_SECONDS):
        for url in list(sides) if window % 2 == 0 else list(reversed(sides)):
            rps[url].append(throughput(url, sides[url], seconds=1.0))
    return statistics.fmean(rps[direct_url]), statistics.fmean(rps[via_url])


def main() -> None:
    refuse_arguments(__doc__)
    with ExitStack() as gateways:
        upstream_url = gateways.enter_context(
            running_gateway(
                {
                    "models": [
                        {"id": "fake", "tier": "cloud", "backend": "fake", "replies": ["pong"]}
                    ],
                    "privacy": {"enabled": False},  # the upstream stands for a bare remote API
                },
                "upstream",
            )
        )
        cloud = {
            "id": "cloud",
            "tier": "cloud",
            "backend": "openai_compat",
            "base_url": f"{upstream_url}/v1",
            "remote_model": "fake",
        }
        gateway_url = gateways.enter_context(
            running_gateway({"models": [cloud], "privacy": {"enabled": False}}, "gateway")
        )
        guarded_url = gateways.enter_context(running_gateway({"models": [cloud]}, "guarded"))
        sides: dict[str, tuple[str, list[float]]] = {
            upstream_url: ("fake", []),
            gateway_url: ("cloud", []),
            guarded_url: ("cloud", []),
        }
        with httpx.Client(timeout=30) as client:
            for _ in range(50):  # warm every path (connections, caches, the PII model)
                for url, (model, _) in sides.items():
                    timed(client, url, model)
            order = list(sides)
            for i in range(REQUESTS):
                for url in order[i % 3 :] + order[: i % 3]:
                    model, times = sides[url]
                    times.append(timed(client, url, model))
        direct_summary = summary_ms(sides[upstream_url][1])
        via_summary = summary_ms(sides[gateway_url][1])
        guarded_summary = summary_ms(sides[guarded_url][1])
        direct_rps, via_rps = interleaved_throughput(upstream_url, gateway_url)
    print(
        json.dumps(
            {
                "benchmark": "gateway_overhead",
                "requests_per_side": REQUESTS,
                "direct": direct_summary,
                "via_gateway": via_summary,
                "added_p50_ms": round(via_summary["p50_ms"] - direct_summary["p50_ms"], 3),
                "via_gateway_with_privacy_guard": guarded_summary,
                "added_p50_ms_with_privacy_guard": round(
                    guarded_summary["p50_ms"] - direct_summary["p50_ms"], 3
                ),
                "target_added_p50_ms": 1.0,
                "throughput_seconds_per_side": THROUGHPUT_SECONDS,
                "direct_rps": round(direct_rps, 1),
                "via_gateway_rps": round(via_rps, 1),
                "throughput_ratio": round(via_rps / direct_rps, 3),
                "target_throughput_ratio": 0.5,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
