"""llama.cpp's OpenMP threads: spinning (libgomp's default) vs sleeping (`OMP_WAIT_POLICY=PASSIVE`)
while they wait, on a quiet CPU and beside other CPU-bound work.

The gateway shares its cores: with the PII guard's NER, the embedding encoder, its own Python
and whatever else runs on the machine. libgomp reads its settings when it is loaded, so each
setting runs in a fresh process; settings alternate in order over the rounds. "busy" runs a
process that spins on one core meanwhile (another tenant, or a burst of NER). Prints JSON:
prompt and generation tokens/s per setting, and the passive/spin ratios.

    python -m benchmarks.omp_wait_policy            # BENCH_ROUNDS=3 by default
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROMPT_TOKENS = 256
GENERATED_TOKENS = 64
# libgomp's default (unset) spins a while before it sleeps; `import smallfirst` sets PASSIVE
SETTINGS: dict[str, str | None] = {"spin": None, "passive": "PASSIVE"}
POLICY = "OMP_WAIT_POLICY"


def measure(setting: str, threads: int) -> dict[str, float]:
    """In this process: tokens/s reading a prompt, then generating greedily."""
    if os.environ.get(POLICY) != SETTINGS[setting]:
        raise RuntimeError(
            f"{POLICY} is not the {setting!r} setting: the run would measure another"
        )
    from llama_cpp import Llama  # loads libgomp, which reads its settings now

    from smallfirst.backends.llamacpp_engine import resolve_model_path

    path = str(resolve_model_path("bundled:smollm2"))
    llm = Llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    words = " ".join(f"word{i}" for i in range(PROMPT_TOKENS))
    prompt = llm.tokenize(words.encode())[:PROMPT_TOKENS]
    llm.eval(prompt[:8])  # the first decode of a process is no steady state
    llm.reset()
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


def run(setting: str, threads: int, busy: bool) -> dict[str, float]:
    env = {name: value for name, value in os.environ.items() if name != POLICY}
    policy = SETTINGS[setting]
    if policy is not None:
        env[POLICY] = policy
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.omp_wait_policy", "--worker", setting, str(threads)],
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
    threads = os.cpu_count() or 1
    results: dict[str, dict[str, list[float]]] = {}
    for round_number in range(ROUNDS):
        order = list(SETTINGS) if round_number % 2 == 0 else list(reversed(SETTINGS))
        for busy in (False, True):
            for setting in order:
                key = f"{setting}, {'busy' if busy else 'quiet'}"
                for name, value in run(setting, threads, busy).items():
                    results.setdefault(key, {}).setdefault(name, []).append(value)
    medians = {
        key: {name: round(statistics.median(values), 1) for name, values in runs.items()}
        for key, runs in results.items()
    }
    ratios = {
        f"passive/spin, {load}": {
            name: round(medians[f"passive, {load}"][name] / medians[f"spin, {load}"][name], 3)
            for name in medians[f"spin, {load}"]
        }
        for load in ("quiet", "busy")
    }
    print(json.dumps({"threads": threads, "rounds": ROUNDS, "median": medians, **ratios}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
