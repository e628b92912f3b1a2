"""Streamed tokens/s of the bundled model: through the gateway vs raw `llama_cpp.Llama`.

Same model, same prompts, greedy decoding, same run; the two sides are interleaved (and their
order alternates) so that a noisy neighbour hits both alike. Also aggregate tokens/s with 1
and 4 concurrent clients on the gateway. Prints JSON.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.common import refuse_arguments, running_gateway
from smallfirst.backends.llamacpp_engine import resolve_model_path

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works, step by step.",
    "List ten facts about the ocean.",
    "Describe a day in the life of a baker.",
]
MAX_TOKENS = 128
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
MODEL = "smollm2-135m"


def gateway_stream(client: httpx.Client, url: str, prompt: str) -> tuple[int, float]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    tokens = 0
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and '"usage":{' in line:
                tokens = json.loads(line[6:])["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def raw_stream(llm: object, prompt: str) -> tuple[int, float]:
    start = time.perf_counter()
    tokens = 0
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            tokens += 1
    return tokens, time.perf_counter() - start


def main() -> None:
    refuse_arguments(__doc__)
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    with running_gateway(
        {"models": [{"id": MODEL, "tier": "edge", "context_length": 2048, "threads": threads}]},
        "local",
    ) as url:
        llm = Llama(
            model_path=str(resolve_model_path("bundled:smollm2")),
            n_ctx=2048,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        # One client for the whole run, as an SDK user keeps one: building an httpx.Client
        # costs 40-60 ms here (its TLS context), which would be billed to the gateway.
        client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=8))
        sides: dict[str, list[tuple[int, float]]] = {"gateway": [], "raw": []}
        for round_ in range(ROUNDS):
            for i, prompt in enumerate(PROMPTS):
                order = ["gateway", "raw"] if (round_ + i) % 2 == 0 else ["raw", "gateway"]
                for side in order:
                    run = (
                        gateway_stream(client, url, prompt)
                        if side == "gateway"
                        else raw_stream(llm, prompt)
                    )
                    sides[side].append(run)
        rates = {
            side: sum(t for t, _ in runs) / sum(s for _, s in runs) for side, runs in sides.items()
        }
        concurrency = {}
        for clients in (1, 4):
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                runs = list(pool.map(lambda p: gateway_stream(client, url, p), PROMPTS[:clients]))
            elapsed = time.perf_counter() - start
            concurrency[f"{clients}_clients_tok_s"] = round(sum(t for t, _ in runs) / elapsed, 1)
        client.close()
        print(
            json.dumps(
                {
                    "benchmark": "local_throughput",
                    "threads": threads,
                    "max_tokens": MAX_TOKENS,
                    "runs_per_side": len(sides["gateway"]),
                    "gateway_tok_s": round(rates["gateway"], 1),
                    "raw_llama_tok_s": round(rates["raw"], 1),
                    "ratio_gateway_vs_raw": round(rates["gateway"] / rates["raw"], 3),
                    "target_ratio": 0.95,
                    **concurrency,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
