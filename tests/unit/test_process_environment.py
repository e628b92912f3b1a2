"""What `import smallfirst` sets in the environment before the native libraries load:
llama.cpp's OpenMP threads sleep while they wait (libgomp reads OMP_WAIT_POLICY once, when
llama_cpp loads it), and onnxruntime collects no telemetry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a server process does, in the order it does it: smallfirst first, llama_cpp later.
LOAD = "import smallfirst.cli, llama_cpp"


def spin_count(given: str | None) -> str:
    """libgomp's spin count as it read its settings (OMP_DISPLAY_ENV prints them on load):
    300000 by default, 0 when its threads sleep at once."""
    env = {name: value for name, value in os.environ.items() if name != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    shown = subprocess.run(
        [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True
    )
    [line] = [line for line in shown.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    return line.split("=")[1].strip().strip("'")


@pytest.mark.parametrize(("given", "count"), [(None, "0"), ("PASSIVE", "0")])
def test_llama_cpps_threads_sleep_while_they_wait(given: str | None, count: str) -> None:
    assert spin_count(given) == count


def test_a_policy_the_user_set_is_kept() -> None:
    assert int(spin_count("ACTIVE")) > 300000


def test_onnxruntime_collects_no_telemetry(tmp_path: Path) -> None:
    """Imported as is, onnxruntime 1.31 wrote a device id and an upload queue to
    ~/.cache/Microsoft/DeveloperTools; the embedding encoder imports it after smallfirst."""
    env = {name: value for name, value in os.environ.items() if name != "ORT_DISABLE_TELEMETRY"}
    env |= {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / ".cache")}
    load = "import smallfirst.embed.encoder, onnxruntime"
    subprocess.run([sys.executable, "-c", load], env=env, check=True)
    assert list(tmp_path.rglob("*")) == []
