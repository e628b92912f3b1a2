"""How well a local model calls tools under `tool_choice: "auto"` (backends/local_tools.py):
for each prompt, did it call the expected tools (with which arguments) or answer in prose?
And, given made-up results of the calls it made, does it then answer in prose (rather than
calling again)?

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

from benchmarks.common import refuse_arguments, running_gateway

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
    "Write a minimal package.json for an Express app called demo. Only the JSON.": [],
    "Say hello to me.": [],
    "Who wrote Hamlet?": [],
}


RESULTS = {
    "get_weather": '{"temp_c": 7, "sky": "cloudy"}',
    "get_time": '{"time": "14:05"}',
    "send_email": '{"sent": true}',
    "add": '{"sum": 42}',
}


def ask(url: str, messages: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
    body = {"model": MODEL, "messages": messages, "tools": TOOLS, "temperature": 0}
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/v1/chat/completions", json=body | {"max_tokens": 120}, timeout=300
    )
    response.raise_for_status()  # an error body has no choices: say what went wrong instead
    return response.json()["choices"][0]["message"], time.perf_counter() - started


def calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for c in message.get("tool_calls") or []
    ]


def answer_after_results(url: str, prompt: str, message: dict[str, Any]) -> dict[str, Any]:
    """The model's next answer once each of its calls has a (made-up) result."""
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": RESULTS[c["function"]["name"]]}
        for c in message["tool_calls"]
    ]
    asked = [{"role": "user", "content": prompt}, message, *results]
    return ask(url, asked)[0]


def main() -> int:
    refuse_arguments(__doc__)
    from smallfirst.catalog import installed_path

    if not installed_path(MODEL).is_file():
        print(json.dumps({"skipped": f"{MODEL} is not installed (smallfirst models install)"}))
        return 0
    config = {
        "models": [
            {"id": MODEL, "tier": "edge", "path": f"installed:{MODEL}", "tools": True},
        ]
    }
    results = []
    with running_gateway(config, "tools") as url:
        for prompt, expected in CASES.items():
            message, seconds = ask(url, [{"role": "user", "content": prompt}])
            calls = calls_of(message)
            case: dict[str, Any] = {
                "prompt": prompt,
                "expected": expected,
                "called": calls,
                "prose": (message.get("content") or "")[:80],
                "right_kind": [c["name"] for c in calls] == expected,
                "seconds": round(seconds, 1),
            }
            if calls:
                then = answer_after_results(url, prompt, message)
                case["then"] = calls_of(then) or (then.get("content") or "")[:80]
                case["then_prose"] = not then.get("tool_calls")
            results.append(case)
    right = sum(r["right_kind"] for r in results)
    followed = [r["then_prose"] for r in results if "then_prose" in r]
    print(
        json.dumps(
            {
                "model": MODEL,
                "right": f"{right}/{len(results)}",
                "prose_after_results": f"{sum(followed)}/{len(followed)}",
                "cases": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
