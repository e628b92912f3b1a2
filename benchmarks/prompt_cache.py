"""Time to first token when conversations take turns on one local model: with saved prompt
states (`prompt_cache_mb`, the default) vs without (0), side by side in one gateway.

Both ids serve the bundled model. Each of CONVERSATIONS users has its own long system prompt
and asks TURNS questions, round-robin, as a gateway serving several apps sees them; each turn
carries the conversation so far. Every turn is sent to both models, in alternating order, so
machine load hits both alike. Prints JSON; the interesting figure is the TTFT of turns after
the first (the first visit to a prompt has nothing saved to start from).

    .venv/bin/python -m benchmarks.prompt_cache
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from benchmarks.common import refuse_arguments, running_gateway, summary_ms

CONVERSATIONS = int(os.environ.get("BENCH_CONVERSATIONS", "3"))
TURNS = int(os.environ.get("BENCH_TURNS", "3"))
MAX_TOKENS = 16
TOPICS = ["astronomy", "cooking", "gardening", "sailing", "chess"]
MODELS = {"saved": 512, "unsaved": 0}


def system_prompt(topic: str) -> str:
    rules = (f"Rule {i}: when asked about {topic}, answer briefly and politely." for i in range(50))
    return f"You are a helpful assistant for {topic}. " + " ".join(rules)


def first_token_s(
    client: httpx.Client, url: str, model: str, messages: list[dict[str, str]]
) -> tuple[float, str]:
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if delta:
                first = first or time.perf_counter() - start
                parts.append(delta)
    return (first or time.perf_counter() - start), "".join(parts)


def main() -> None:
    refuse_arguments(__doc__)
    config = {
        "models": [
            {"id": model, "tier": "edge", "prompt_cache_mb": mb, "context_length": 4096}
            for model, mb in MODELS.items()
        ]
    }
    ttft: dict[str, dict[str, list[float]]] = {m: {"first": [], "later": []} for m in MODELS}
    conversations = {
        model: [
            [{"role": "system", "content": system_prompt(TOPICS[c % len(TOPICS)])}]
            for c in range(CONVERSATIONS)
        ]
        for model in MODELS
    }
    with running_gateway(config, "prompt-cache") as url, httpx.Client(timeout=600) as client:
        for turn in range(TURNS):
            for c in range(CONVERSATIONS):
                order = list(MODELS) if (turn + c) % 2 == 0 else list(reversed(MODELS))
                for model in order:
                    messages = conversations[model][c]
                    messages.append(
                        {
                            "role": "user",
                            "content": f"Question {turn + 1}: tell me something new.",
                        }
                    )
                    seconds, answer = first_token_s(client, url, model, messages)
                    messages.append({"role": "assistant", "content": answer})
                    ttft[model]["first" if turn == 0 else "later"].append(seconds)
    result: dict[str, Any] = {
        model: {kind: summary_ms(values) for kind, values in kinds.items() if values}
        for model, kinds in ttft.items()
    }
    later = {model: sum(kinds["later"]) for model, kinds in ttft.items()}
    result["later_turns_ttft_ratio_unsaved_over_saved"] = (
        round(later["unsaved"] / later["saved"], 1) if later["saved"] else None
    )
    result["setup"] = {"conversations": CONVERSATIONS, "turns": TURNS, "max_tokens": MAX_TOKENS}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
