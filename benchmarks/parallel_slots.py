"""Concurrent requests to one local model: answered one at a time (`parallel: 1`) vs decoded
together in slots (`parallel: 4` unless BENCH_SLOTS says otherwise), side by side in one
gateway.

Both ids serve the bundled model (BENCH_SLOTS sets the second one's slots). A round sends
CLIENTS requests at once to one of them (greedy, up to MAX_TOKENS each); rounds alternate
between the two, so machine load hits both alike and they never run at the same time. Then,
per model, a short request sent while a long answer is under way: how long the short one
takes (head-of-line blocking). Prints JSON.

    .venv/bin/python -m benchmarks.parallel_slots
    BENCH_SLOTS=8 BENCH_CLIENTS=8 .venv/bin/python -m benchmarks.parallel_slots
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.common import refuse_arguments, running_gateway, summary_ms

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
MAX_TOKENS = 128
MODELS = {"serial": 1, "slots": int(os.environ.get("BENCH_SLOTS", "4"))}
QUESTIONS = [
    "Explain how a bicycle stays upright.",
    "Write a short story about a lighthouse keeper.",
    "Describe the water cycle for a child.",
    "Give advice for a first job interview.",
    "Explain why the sky is blue.",
    "Describe a walk through a autumn forest.",
    "How do vaccines train the immune system?",
    "Write a letter to a future self.",
]


def ask(client: httpx.Client, url: str, model: str, question: str, max_tokens: int) -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    response = client.post(f"{url}/v1/chat/completions", json=body)
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


def one_round(client: httpx.Client, url: str, model: str, first: int) -> tuple[float, int]:
    """Wall seconds and completion tokens of CLIENTS requests sent at once."""
    questions = [QUESTIONS[(first + i) % len(QUESTIONS)] for i in range(CLIENTS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        tokens = list(pool.map(lambda q: ask(client, url, model, q, MAX_TOKENS), questions))
    return time.perf_counter() - start, sum(tokens)


def short_behind_long(client: httpx.Client, url: str, model: str) -> float:
    """Seconds a 4-token request takes when it arrives 0.3 s into a 256-token answer."""
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(ask, client, url, model, "Write a long essay about the sea.", 256)
        time.sleep(0.3)
        start = time.perf_counter()
        ask(client, url, model, "Say hi.", 4)
        seconds = time.perf_counter() - start
        long.result()
    return seconds


def main() -> None:
    refuse_arguments(__doc__)
    config = {
        "models": [
            {"id": model, "tier": "edge", "parallel": n, "context_length": 2048, "queue_size": 8}
            for model, n in MODELS.items()
        ]
    }
    walls: dict[str, list[float]] = {model: [] for model in MODELS}
    tokens: dict[str, int] = dict.fromkeys(MODELS, 0)
    short: dict[str, list[float]] = {model: [] for model in MODELS}
    with running_gateway(config, "parallel-slots") as url, httpx.Client(timeout=600) as client:
        for model in MODELS:  # load both and fill their first contexts
            ask(client, url, model, QUESTIONS[0], 4)
        for index in range(ROUNDS):
            order = list(MODELS) if index % 2 == 0 else list(reversed(MODELS))
            for model in order:
                seconds, count = one_round(client, url, model, index)
                walls[model].append(seconds)
                tokens[model] += count
                short[model].append(short_behind_long(client, url, model))
    rate = {model: tokens[model] / sum(walls[model]) for model in MODELS}
    print(
        json.dumps(
            {
                "tokens_per_s": {model: round(value, 1) for model, value in rate.items()},
                "throughput_ratio_slots_over_serial": round(rate["slots"] / rate["serial"], 2),
                "completion_tokens": tokens,
                "round_wall": {model: summary_ms(values) for model, values in walls.items()},
                "short_request_behind_long": {
                    model: summary_ms(values) for model, values in short.items()
                },
                "setup": {
                    "clients": CLIENTS,
                    "rounds": ROUNDS,
                    "max_tokens": MAX_TOKENS,
                    "slots": MODELS["slots"],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
