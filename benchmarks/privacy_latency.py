"""Latency of the privacy guard per 1,000-character prompt, side by side with the spaCy NER
pass it contains (the floor for any spaCy-based detector).

    .venv/bin/python -m benchmarks.privacy_latency [--data F.json] [--prompts N] [--chars N]

Prints a human summary, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

FALLBACK_TEXT = (
    "Hi, I'm Maria Lindqvist. Please ship the order to 221 Baker Street, London NW1 6XE and "
    "call me on +44 20 7946 0958 or mail maria@example.org; card 4111 1111 1111 1111. "
)


def build_prompts(data: Path | None, count: int, length: int) -> list[str]:
    if data is not None and data.is_file():
        texts = [item["full_text"] for item in json.loads(data.read_text(encoding="utf-8"))]
    else:
        texts = [FALLBACK_TEXT]
    prompts, index = [], 0
    for _ in range(count):
        prompt = ""
        while len(prompt) < length:
            prompt += texts[index % len(texts)] + "\n"
            index += 1
        prompts.append(prompt[:length])
    return prompts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/pii/synth_dataset_v2.json")
    )
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--chars", type=int, default=1000)
    args = parser.parse_args()

    from smallfirst.privacy.detect import PiiDetector

    detector = PiiDetector()
    started = time.perf_counter()
    detector.warm_up()
    load_s = time.perf_counter() - started
    nlp = detector._analyzer.nlp_engine.nlp["en"]  # the same pipeline the guard runs
    prompts = build_prompts(args.data, args.prompts, args.chars)

    guard_ms: list[float] = []
    spacy_ms: list[float] = []
    for prompt in prompts:  # interleave the two sides so machine load hits both alike
        started = time.perf_counter()
        nlp(prompt)
        spacy_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        detector.inspect(prompt)
        guard_ms.append((time.perf_counter() - started) * 1000)

    print(f"analyzer load: {load_s:.2f} s; {len(prompts)} prompts of {args.chars} chars")
    for name, values in (("guard (inspect)", guard_ms), ("spaCy NER only", spacy_ms)):
        print(
            f"{name:16s} p50 {percentile(values, 50):6.1f} ms  p95 {percentile(values, 95):6.1f} ms"
            f"  mean {statistics.fmean(values):6.1f} ms"
        )
    ratio = statistics.median(guard_ms) / statistics.median(spacy_ms)
    print(f"guard / spaCy median ratio: {ratio:.2f}")
    print(
        json.dumps(
            {
                "benchmark": "privacy_latency",
                "chars": args.chars,
                "prompts": len(prompts),
                "guard_p50_ms": round(percentile(guard_ms, 50), 2),
                "guard_p95_ms": round(percentile(guard_ms, 95), 2),
                "spacy_p50_ms": round(percentile(spacy_ms, 50), 2),
                "guard_over_spacy": round(ratio, 3),
                "load_s": round(load_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
