"""What `import smallfirst` sets in the environment before the native libraries load:
llama.cpp's OpenMP threads spin only briefly while they wait (libgomp reads its settings once,
when llama_cpp loads it), and onnxruntime collects no telemetry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a server process does, in the order it does it: smallfirst first, llama_cpp later.
LOAD = "import smallfirst.cli, llama_cpp"


def spin_count(**given: str) -> str:
    """libgomp's spin count as it read its settings (OMP_DISPLAY_ENV prints them on load):
    300000 by default, 0 when its threads sleep at once."""
    knobs = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    env = {name: value for name, value in os.environ.items() if name not in knobs}
    env |= {"OMP_DISPLAY_ENV": "VERBOSE", **given}
    shown = subprocess.run(
        [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True
    )
    [line] = [line for line in shown.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    return line.split("=")[1].strip().strip("'")


def test_llama_cpps_threads_spin_only_briefly_while_they_wait() -> None:
    """libgomp's default 300,000 spins took the cores other work needed: generation beside
    one busy process fell to 1-4 tokens/s (benchmarks/omp_wait_policy.py)."""
    assert spin_count() == "3000"


@pytest.mark.parametrize(
    ("given", "count"),
    [
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "0"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000"),
        ({"GOMP_SPINCOUNT": "100"}, "100"),
    ],
)
def test_the_users_own_setting_is_kept(given: dict[str, str], count: str) -> None:
    assert spin_count(**given) == count


def test_onnxruntime_collects_no_telemetry(tmp_path: Path) -> None:
    """Imported as is, onnxruntime 1.31 wrote a device id and an upload queue to
    ~/.cache/Microsoft/DeveloperTools; the embedding encoder imports it after smallfirst."""
    env = {name: value for name, value in os.environ.items() if name != "ORT_DISABLE_TELEMETRY"}
    env |= {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / ".cache")}
    load = "import smallfirst.embed.encoder, onnxruntime"
    subprocess.run([sys.executable, "-c", load], env=env, check=True)
    assert list(tmp_path.rglob("*")) == []
