"""Shared by the benchmark scripts: run a gateway process, percentiles."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

SERVE = [sys.executable, "-m", "smallfirst", "serve", "--log-level", "warning"]
READY_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_gateway(config: dict[str, Any], name: str) -> Iterator[str]:
    """A `smallfirst serve` process with this config, in a scratch directory; yields its URL
    once ready, then stops it and removes the directory."""
    directory = Path(tempfile.mkdtemp(prefix=f"smallfirst-bench-{name}-"))
    try:
        config = {"data_dir": str(directory / "data"), **config}
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(
            [*SERVE, "--config", str(directory / "config.yaml"), "--port", str(port)],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_ready(process, url, name)
            yield url
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} (its error is above)")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} was not ready after {READY_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95 and mean in ms, and the number of samples: with 11 or fewer, p95 is the
    slowest one."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "samples": len(ms),
    }
