"""The privacy guard's time per request over growing conversations: a detector that remembers
the texts it has seen against one that reads every text again, request by request in turn.

    .venv/bin/python -m benchmarks.privacy_conversation [--data F.json] [--conversations N]
        [--turns N] [--tools N]

A chat client sends the whole conversation on every turn, and an agent its tool definitions
(here `--tools` tools with five texts each: a description and four parameter descriptions).
The guard scans every one of those texts (`privacy_step.messages_of`).

Prints a human summary, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.privacy_latency import DEV_SET, dev_texts


def tool_definitions(count: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{index}",
                "description": f"Look up part {index} of an order, e.g. 'standard' or 'express'.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "description": f"the {name} to look up"}
                        for name in ("id", "kind", "region", "status")
                    },
                },
            },
        }
        for index in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEV_SET)
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tools", type=int, default=5)
    args = parser.parse_args()

    from smallfirst.privacy.detect import PiiDetector
    from smallfirst.privacy_step import messages_of
    from smallfirst.types import ChatRequest

    texts, data = dev_texts(args.data)
    detectors = {"remembering": PiiDetector(), "reading all": PiiDetector(recent_texts=0)}
    for detector in detectors.values():
        detector.warm_up()
        for text in texts:  # spaCy adds each new word to its vocabulary once: not per side
            detector.ner.nlp.make_doc(text)
    tools = tool_definitions(args.tools) or None
    times: dict[str, list[float]] = {name: [] for name in detectors}
    index = 0
    for _ in range(args.conversations):
        messages: list[dict[str, str]] = []
        for _ in range(args.turns):
            messages.append({"role": "user", "content": texts[index % len(texts)]})
            request = ChatRequest.model_validate(
                {"model": "any", "messages": messages, "tools": tools}
            )
            for name, detector in detectors.items():
                started = time.perf_counter()
                for message in messages_of(request):
                    detector.inspect(message.text)
                times[name].append((time.perf_counter() - started) * 1000)
            messages.append({"role": "assistant", "content": texts[(index + 1) % len(texts)]})
            index += 2

    print(
        f"{args.conversations} conversations x {args.turns} turns, {args.tools} tools"
        " (timed per request, the two sides in turn)"
    )
    for name, values in times.items():
        p50, mean = statistics.median(values), statistics.fmean(values)
        print(f"{name:12s} p50 {p50:6.1f} ms  mean {mean:6.1f} ms")
    ratio = statistics.fmean(times["reading all"]) / statistics.fmean(times["remembering"])
    print(f"reading all / remembering, mean per request: {ratio:.1f}x")
    print(
        json.dumps(
            {
                "benchmark": "privacy_conversation",
                "data": data,
                "conversations": args.conversations,
                "turns": args.turns,
                "tools": args.tools,
                "remembering_mean_ms": round(statistics.fmean(times["remembering"]), 2),
                "reading_all_mean_ms": round(statistics.fmean(times["reading all"]), 2),
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
