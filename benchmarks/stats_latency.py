"""`smallfirst stats` / `/dashboard` latency on a large request log: p50 per window (prints JSON).

Builds (once per user, cached in the temp dir, never in the repo) a log of N requests over 40 days,
written by the gateway's own `RequestLog`: four tiers and a model-less share, several routers,
API keys, failures (a 499 with and without a model), escalations, PII actions and entity
counts, cached prompt tokens, a few rows with their texts, and the oldest rows without a known
baseline (as migration 0005 leaves a log from before baselines). Then times `summarize()`,
what both read, and `summarize_by_key()` (`stats --by-key`, under "by_key"), over each window
ending at the newest row, the windows taking turns in each round so that load on the machine
hits them alike; `cpu_p50_ms` is this process's CPU time, steadier than the wall clock on a
shared machine. Measured, never asserted.

    .venv/bin/python -m benchmarks.stats_latency [--rows 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import built_once, cache_folder, summary_ms
from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.logs.stats import parse_window, summarize, summarize_by_key
from smallfirst.percentiles import percentile

DAYS = 40
BASELINE_SINCE_DAY = 33  # rows older than this many days have no known baseline
WINDOWS = ("1h", "24h", "7d", "30d", "all")
MODELS = {  # id: (tier, USD per 1M input, per 1M output)
    "smollm2-135m": ("edge", 0.0, 0.0),
    "qwen2.5-0.5b": ("edge", 0.0, 0.0),
    "llama-3.1-8b": ("onprem", 0.05, 0.1),
    "gpt-4o-mini": ("cloud", 0.15, 0.6),
    "gpt-4o": ("cloud", 2.5, 10.0),
    "all-minilm-l6-v2": ("embeddings", 0.0, 0.0),
}
# (what was timed: "summarize" or "by_key", window) -> wall seconds or CPU milliseconds
Timings = dict[tuple[str, str], list[float]]
ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "LOCATION")


def request(rng: random.Random, number: int, now: float) -> RequestRecord:
    model: str | None = rng.choices([*MODELS, None], [30, 25, 15, 15, 5, 8, 2])[0]
    tier, input_price, output_price = MODELS[model] if model else (None, 0.0, 0.0)
    status = rng.choices([200, 499, 400, 429, 502, 503], [900, 25, 20, 15, 20, 8])[0]
    if tier is None:
        status = rng.choice([400, 401, 429, 499])
    prompt = rng.randint(5, 3000)
    completion = 0 if tier == "embeddings" or status >= 500 else rng.randint(1, 800)
    latency = rng.lognormvariate(6.0 if tier == "cloud" else 5.0, 0.8)
    streamed = tier not in (None, "embeddings") and rng.random() < 0.5
    pii = rng.random() < 0.12
    found = {kind: rng.randint(1, 4) for kind in rng.sample(ENTITIES, rng.randint(1, 3))}
    keep_text = rng.random() < 0.03
    return RequestRecord(
        id=f"bench-{number:08d}",
        created_at=now - rng.random() ** 0.7 * DAYS * 86400,  # busier lately
        endpoint="embeddings" if tier == "embeddings" else "chat",
        model_requested=rng.choice(["auto", "auto", model or "unknown"]),
        model_answered=model if status < 400 or status == 499 else None,
        tier=tier,
        status=status,
        error_code=None if status < 400 else f"error_{status}",
        stream=streamed,
        prompt_tokens=prompt if tier else 0,
        cached_tokens=rng.randint(0, prompt) if tier and rng.random() < 0.3 else 0,
        completion_tokens=completion if tier else 0,
        latency_ms=latency,
        ttft_ms=latency * rng.random() if streamed and status in (200, 499) else None,
        cost_usd=(prompt * input_price + completion * output_price) / 1e6 if tier else 0.0,
        baseline_cost_usd=(prompt * 2.5 + completion * 10.0) / 1e6 if tier else 0.0,
        api_key_id=rng.choice([None, "team-a", "team-b", "ci"]),
        route_reason=rng.choice([None, "short prompt", "score 0.41 < 0.5"]),
        router=rng.choice(["rules", "learned", "none"]) if tier else None,
        escalations=rng.choice(["smollm2-135m", None]) if tier == "cloud" else None,
        pii_entities=json.dumps(found) if pii else None,
        pii_action=rng.choice(["redact", "local_only", "block", "allow"]) if pii else None,
        prompt="hello " * rng.randint(5, 200) if keep_text else None,
        response="an answer " * rng.randint(5, 200) if keep_text else None,
    )


def build(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    log = RequestLog(path)
    for number in range(rows):
        log.record(request(rng, number, now))
    log.close()
    connection = sqlite3.connect(path)
    with connection:
        cutoff = now - BASELINE_SINCE_DAY * 86400
        connection.execute(
            "UPDATE requests SET baseline_cost_usd = NULL WHERE created_at < ?", (cutoff,)
        )
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")

    path = cache_folder("smallfirst-stats-bench") / f"requests-{args.rows}-{args.seed}.db"
    build_seconds = built_once(path, lambda partial: build(partial, args.rows, args.seed))
    connection = sqlite3.connect(path)
    (newest,) = connection.execute("SELECT max(created_at) FROM requests").fetchone()
    connection.close()

    summarize(path)  # warm the page cache, and migrate a log built by an older version
    readers: dict[str, Callable[[Path, float | None], object]] = {
        "summarize": summarize,
        "by_key": summarize_by_key,
    }
    wall: Timings = {(reader, window): [] for reader in readers for window in WINDOWS}
    cpu: Timings = {(reader, window): [] for reader in readers for window in WINDOWS}
    for round_number in range(args.rounds):
        turn = round_number % len(WINDOWS)
        for window in WINDOWS[turn:] + WINDOWS[:turn]:
            seconds = parse_window(window)
            since = None if seconds is None else newest - seconds
            for reader, read in readers.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                read(path, since)
                wall[reader, window].append(time.perf_counter() - started)
                cpu[reader, window].append((time.process_time() - started_cpu) * 1000)
    report: dict[str, object] = {
        "rows": args.rows,
        "log_mb": round(path.stat().st_size / 1e6, 1),
        "build_seconds": round(build_seconds, 1),
        "rounds": args.rounds,
    }
    timings = {reader: _timings(wall, cpu, reader) for reader in readers}
    report |= timings.pop("summarize")
    report |= timings
    print(json.dumps(report, indent=1))


def _timings(wall: Timings, cpu: Timings, reader: str) -> dict[str, object]:
    return {
        window: summary_ms(wall[reader, window])
        | {"cpu_p50_ms": round(percentile(cpu[reader, window], 50), 3)}
        for window in WINDOWS
    }


if __name__ == "__main__":
    main()
