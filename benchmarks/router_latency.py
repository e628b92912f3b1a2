"""Router decision latency, measured per router side by side on real dev prompts.

Usage: .venv/bin/python -m benchmarks.router_latency --artifact PATH [--data F.jsonl ...]
Prints JSON: p50/p95 in ms per router and the ratio to the `length` baseline. One decision =
`router.score(messages)` on one request (for `learned`: embedding + features + model), the
routers interleaved per prompt so background load hits them alike. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

# The development data beside the checkout (../shared), wherever the script is run from.
DEFAULT_DATA = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / name
    for name in ("gsm8k.jsonl", "mt_bench.jsonl", "mmlu_dev.jsonl")
]


def main() -> None:
    from smallfirst.routing.base import load_router
    from smallfirst.routing.data import read_many

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="learned router artifact (router train --out)")
    parser.add_argument("--data", action="append", type=Path)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    missing = [str(path) for path in args.data or DEFAULT_DATA if not path.is_file()]
    if missing:
        parser.error(f"no data at {', '.join(missing)} (--data ROWS.jsonl)")
    rows = read_many(args.data or DEFAULT_DATA)
    if not 2 <= args.samples <= len(rows):  # a p95 needs two; `sample` draws without putting back
        parser.error(f"--samples must be 2 to {len(rows)} (the rows read), got {args.samples}")
    prompts = [row.messages for row in random.Random(args.seed).sample(rows, args.samples)]
    specs = ["random", "length", "rules", *([args.artifact] if args.artifact else [])]
    routers = {("learned" if spec == args.artifact else spec): load_router(spec) for spec in specs}
    for router in routers.values():  # warm-up: loads the encoder, fills caches
        router.score(prompts[0])
    timings: dict[str, list[float]] = {name: [] for name in routers}
    for messages in prompts:
        for name, router in routers.items():
            start = time.perf_counter()
            router.score(messages)
            timings[name].append((time.perf_counter() - start) * 1000)
    length_p50 = statistics.median(timings["length"])
    report: dict[str, Any] = {
        name: {
            "p50_ms": round(statistics.median(values), 3),
            "p95_ms": round(statistics.quantiles(values, n=20)[18], 3),
            "p50_vs_length": round(statistics.median(values) / length_p50, 1),
        }
        for name, values in timings.items()
    }
    report["_setup"] = {
        "samples": len(prompts),
        "data": [str(p) for p in args.data or DEFAULT_DATA],
        "artifact": args.artifact,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
