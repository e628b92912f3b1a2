"""llama.cpp's OpenMP threads: how long they spin before they sleep while they wait
(libgomp's default, `OMP_WAIT_POLICY=PASSIVE`, `GOMP_SPINCOUNT`, one thread), on a quiet CPU
and beside other CPU-bound work. `import smallfirst` sets `GOMP_SPINCOUNT=3000` ("spin 3k").

The gateway shares its cores: with the PII guard's NER, the embedding encoder, its own Python
and whatever else runs on the machine. libgomp reads its settings when it is loaded, so each
setting runs in a fresh process; settings alternate in order over the rounds. "busy" runs a
process that spins on one core meanwhile (another tenant, or a burst of NER). Prints JSON:
prompt and generation tokens/s per setting, and each setting's ratio to libgomp's default.

    python -m benchmarks.omp_wait_policy            # BENCH_ROUNDS=3 by default
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import refuse_arguments

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROMPT_TOKENS = 256
GENERATED_TOKENS = 64
KNOBS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# name -> (libgomp settings, threads; None: all cores). libgomp's default spins 300,000 times
# before it sleeps; PASSIVE sleeps at once; a spin count in between spins that long.
SETTINGS: dict[str, tuple[dict[str, str], int | None]] = {
    "default": ({}, None),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "spin 1k": ({"GOMP_SPINCOUNT": "1000"}, None),
    "spin 3k": ({"GOMP_SPINCOUNT": "3000"}, None),
    "1 thread": ({}, 1),
}


def measure(setting: str) -> dict[str, float]:
    """In this process: tokens/s reading a prompt, then generating greedily."""
    knobs, threads = SETTINGS[setting]
    if {name: os.environ[name] for name in KNOBS if name in os.environ} != knobs:
        raise RuntimeError(f"the environment is not the {setting!r} setting")
    threads = threads or os.cpu_count() or 1
    from llama_cpp import Llama  # loads libgomp, which reads its settings now

    from smallfirst.backends.llamacpp_engine import resolve_model_path

    path = str(resolve_model_path("bundled:smollm2"))
    llm = Llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    words = " ".join(f"word{i}" for i in range(PROMPT_TOKENS))
    prompt = llm.tokenize(words.encode())[:PROMPT_TOKENS]
    llm.eval(prompt[:8])  # the first decode of a process is no steady state
    llm.reset()  # type: ignore[no-untyped-call]
    start = time.perf_counter()
    llm.eval(prompt)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    generated = 0
    for _ in llm.generate(prompt, temp=0.0, reset=False):
        generated += 1
        if generated == GENERATED_TOKENS:
            break
    return {
        "prompt_tok_s": len(prompt) / read_s,
        "generate_tok_s": generated / (time.perf_counter() - start),
    }


def run(setting: str, busy: bool) -> dict[str, float]:
    env = {name: value for name, value in os.environ.items() if name not in KNOBS}
    env |= SETTINGS[setting][0]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.omp_wait_policy", "--worker", setting],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return dict(json.loads(out))


def main() -> None:
    refuse_arguments(__doc__)
    results: dict[str, dict[str, list[float]]] = {}
    for round_number in range(ROUNDS):
        order = list(SETTINGS) if round_number % 2 == 0 else list(reversed(SETTINGS))
        for busy in (False, True):
            for setting in order:
                key = f"{setting}, {'busy' if busy else 'quiet'}"
                for name, value in run(setting, busy).items():
                    results.setdefault(key, {}).setdefault(name, []).append(value)
    medians = {
        key: {name: round(statistics.median(values), 1) for name, values in runs.items()}
        for key, runs in results.items()
    }
    # each setting against libgomp's default, quiet and busy
    ratios = {
        f"{key} / default": {
            name: round(value / medians[f"default, {key.split(', ')[1]}"][name], 3)
            for name, value in runs.items()
        }
        for key, runs in medians.items()
        if not key.startswith("default")
    }
    report = {"cores": os.cpu_count(), "rounds": ROUNDS, "median": medians, "ratio": ratios}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(measure(sys.argv[2])))
    else:
        main()
