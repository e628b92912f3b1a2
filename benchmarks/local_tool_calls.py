"""How well a local model calls tools under `tool_choice: "auto"` (backends/local_tools.py):
for each prompt, did it call the expected tools (with which arguments) or answer in prose?

A smoke test of the mechanism on a handful of prompts, not a benchmark of the model: greedy,
one run. Needs Qwen2.5-Coder-1.5B (`smallfirst models install qwen2.5-coder-1.5b`); without it,
says so and exits 0.

    .venv/bin/python -m benchmarks.local_tool_calls
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

from benchmarks.common import start_gateway, stop

MODEL = "qwen2.5-coder-1.5b"


def _tool(name: str, description: str, **properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": sorted(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


TEXT = {"type": "string"}
NUMBER = {"type": "number"}
TOOLS = [
    _tool("get_weather", "Current weather in a city", city=TEXT),
    _tool("get_time", "Current local time in a city", city=TEXT),
    _tool("send_email", "Send an e-mail", to=TEXT, body=TEXT),
    _tool("add", "Add two numbers", a=NUMBER, b=NUMBER),
]
# prompt -> the tools the answer should call, in order ([] = prose)
CASES: dict[str, list[str]] = {
    "What's the weather in Oslo?": ["get_weather"],
    "Is it raining in Paris right now?": ["get_weather"],
    "E-mail bob@example.com that the build is green.": ["send_email"],
    "Send ann@example.com a mail saying lunch is at noon.": ["send_email"],
    "What is 1234 + 4321?": ["add"],
    "Add 17 and 25.": ["add"],
    "What's the weather in Oslo and the time in Paris?": ["get_weather", "get_time"],
    "Write a haiku about the sea.": [],
    "Say hello to me.": [],
    "Who wrote Hamlet?": [],
}


def ask(url: str, prompt: str) -> tuple[list[dict[str, Any]], str, float]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "tools": TOOLS,
        "temperature": 0,
        "max_tokens": 120,
    }
    started = time.perf_counter()
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).json()
    message = answer["choices"][0]["message"]
    calls = [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for c in message.get("tool_calls") or []
    ]
    return calls, message.get("content") or "", time.perf_counter() - started


def main() -> int:
    from smallfirst.catalog import installed_path

    if not installed_path(MODEL).is_file():
        print(json.dumps({"skipped": f"{MODEL} is not installed (smallfirst models install)"}))
        return 0
    config = {
        "models": [
            {"id": MODEL, "tier": "edge", "path": f"installed:{MODEL}", "tools": True},
        ]
    }
    process, url = start_gateway(config, "tools")
    results = []
    try:
        for prompt, expected in CASES.items():
            calls, text, seconds = ask(url, prompt)
            results.append(
                {
                    "prompt": prompt,
                    "expected": expected,
                    "called": calls,
                    "prose": text[:80],
                    "right_kind": [c["name"] for c in calls] == expected,
                    "seconds": round(seconds, 1),
                }
            )
    finally:
        stop(process)
    right = sum(r["right_kind"] for r in results)
    print(json.dumps({"model": MODEL, "right": f"{right}/{len(results)}", "cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
