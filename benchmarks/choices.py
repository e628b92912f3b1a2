"""`n` answers to one prompt on the bundled model (4 slots): one request with `n: 4` (the
answers decoded side by side) vs the same four answers asked one request after another.

Each round samples four answers (seeds s..s+3, up to MAX_TOKENS each) both ways, in
alternating order, so machine load hits both alike. Prints JSON.

    .venv/bin/python -m benchmarks.choices
"""

from __future__ import annotations

import json
import os
import time

import httpx

from benchmarks.common import start_gateway, stop, summary_ms

N = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
MAX_TOKENS = 96
PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]


def ask(client: httpx.Client, url: str, seed: int, n: int) -> int:
    body = {
        "model": "slots",
        "messages": PROMPT,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.8,
        "seed": seed,
        "n": n,
    }
    response = client.post(f"{url}/v1/chat/completions", json=body)
    response.raise_for_status()
    assert len(response.json()["choices"]) == n
    return int(response.json()["usage"]["completion_tokens"])


def main() -> None:
    config = {"models": [{"id": "slots", "tier": "edge", "parallel": N, "context_length": 1024}]}
    process, url = start_gateway(config, "choices")
    walls: dict[str, list[float]] = {"one_request_n4": [], "four_requests": []}
    tokens = dict.fromkeys(walls, 0)
    try:
        with httpx.Client(timeout=600) as client:
            ask(client, url, 0, 1)  # load the model
            for index in range(ROUNDS):
                seed = 100 * index
                order = list(walls) if index % 2 == 0 else list(reversed(walls))
                for way in order:
                    start = time.perf_counter()
                    if way == "one_request_n4":
                        tokens[way] += ask(client, url, seed, N)
                    else:
                        tokens[way] += sum(ask(client, url, seed + i, 1) for i in range(N))
                    walls[way].append(time.perf_counter() - start)
    finally:
        stop(process)
    seconds = {way: sum(values) for way, values in walls.items()}
    print(
        json.dumps(
            {
                "wall_ratio_four_requests_over_n4": round(
                    seconds["four_requests"] / seconds["one_request_n4"], 2
                ),
                "tokens_per_s": {way: round(tokens[way] / seconds[way], 1) for way in walls},
                "completion_tokens": tokens,
                "round_wall": {way: summary_ms(values) for way, values in walls.items()},
                "setup": {"n": N, "rounds": ROUNDS, "max_tokens": MAX_TOKENS},
            }
        )
    )


if __name__ == "__main__":
    main()
