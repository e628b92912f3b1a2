"""`n` answers to one prompt on the bundled model (4 slots): one request with `n: 4` (the
answers decoded side by side, the prompt read by one slot and copied to the others) vs the
same four answers asked one request after another (the prompt read once, then kept).

Each round samples four answers (seeds s..s+3, up to MAX_TOKENS each) both ways, in
alternating order, so machine load hits both alike; once with a short question and once with
a ~1,300-token document before it (a new document each round, so no round finds it kept).
Prints JSON.

    .venv/bin/python -m benchmarks.choices
"""

from __future__ import annotations

import json
import os
import time

import httpx

from benchmarks.common import refuse_arguments, running_gateway, summary_ms

N = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
MAX_TOKENS = 96
QUESTION = "Write a short story about a lighthouse keeper."


def prompt(kind: str, round_index: int) -> list[dict[str, str]]:
    if kind == "short":
        return [{"role": "user", "content": QUESTION}]
    facts = " ".join(
        f"Record {round_index}-{i}: the harbour light at cape {i} was inspected and found sound."
        for i in range(60)
    )
    return [{"role": "user", "content": f"{facts}\n\n{QUESTION}"}]


def ask(client: httpx.Client, url: str, messages: list[dict[str, str]], seed: int, n: int) -> int:
    body = {
        "model": "slots",
        "messages": messages,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.8,
        "seed": seed,
        "n": n,
    }
    response = client.post(f"{url}/v1/chat/completions", json=body)
    response.raise_for_status()
    assert len(response.json()["choices"]) == n
    return int(response.json()["usage"]["completion_tokens"])


def measure(client: httpx.Client, url: str, kind: str) -> dict[str, object]:
    walls: dict[str, list[float]] = {"one_request_n4": [], "four_requests": []}
    tokens = dict.fromkeys(walls, 0)
    for index in range(ROUNDS):
        order = list(walls) if index % 2 == 0 else list(reversed(walls))
        for way in order:
            messages, seed = prompt(kind, 2 * index + order.index(way)), 100 * index
            start = time.perf_counter()
            if way == "one_request_n4":
                tokens[way] += ask(client, url, messages, seed, N)
            else:
                tokens[way] += sum(ask(client, url, messages, seed + i, 1) for i in range(N))
            walls[way].append(time.perf_counter() - start)
    seconds = {way: sum(values) for way, values in walls.items()}
    return {
        "wall_ratio_four_requests_over_n4": round(
            seconds["four_requests"] / seconds["one_request_n4"], 2
        ),
        "completion_tokens_per_s": {way: round(tokens[way] / seconds[way], 1) for way in walls},
        "completion_tokens": tokens,
        "round_wall": {way: summary_ms(values) for way, values in walls.items()},
    }


def main() -> None:
    refuse_arguments(__doc__)
    config = {"models": [{"id": "slots", "tier": "edge", "parallel": N, "context_length": 2048}]}
    with running_gateway(config, "choices") as url, httpx.Client(timeout=600) as client:
        ask(client, url, prompt("short", 0), 0, 1)  # load the model
        results = {kind: measure(client, url, kind) for kind in ("short", "long")}
    setup = {"n": N, "rounds": ROUNDS, "max_tokens": MAX_TOKENS}
    print(json.dumps({**results, "setup": setup}))


if __name__ == "__main__":
    main()
