"""Shared by the benchmark scripts: run a gateway process, latency summaries, data built once
and cached in the temp dir."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from smallfirst.paths import create_own_private_dir, exclusive_lock
from smallfirst.percentiles import percentile

READY_TIMEOUT_S = 60


def refuse_arguments(doc: str | None) -> None:
    """For a benchmark set by environment variables only: `--help` prints its docstring, and
    any other argument is an error (both were ignored: `--help` started a full run)."""
    argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_process(
    config: dict[str, Any],
    directory: Path,
    port: int,
    log_level: str = "warning",
    output: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """`smallfirst serve` on 127.0.0.1:`port` with this config, written into `directory`
    (its data directory is `directory/data` unless the config names one); output goes to
    `output`, or to this process's own when None."""
    config = {"data_dir": str(directory / "data"), **config}
    config_path = directory / "smallfirst.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "smallfirst", "serve", "--config", str(config_path)]
    return subprocess.Popen(
        [*command, "--port", str(port), "--log-level", log_level],
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    """Returns once the gateway at `url` answers /readyz; RuntimeError if it exits or is not
    ready within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway for {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the gateway at {url} was not ready after {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_gateway(config: dict[str, Any], name: str) -> Iterator[str]:
    """A `smallfirst serve` process with this config, in a scratch directory; yields its URL
    once ready, then stops it and removes the directory."""
    directory = Path(tempfile.mkdtemp(prefix=f"smallfirst-bench-{name}-"))
    try:
        port = free_port()
        process = serve_process(config, directory, port)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(process, url, READY_TIMEOUT_S)
            yield url
        finally:
            stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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


def cache_folder(name: str) -> Path:
    """This user's folder `name` in the temp dir, for data a benchmark builds once: a folder
    shared by every user is one only the first may write to."""
    folder = Path(tempfile.gettempdir()) / f"{name}-{os.geteuid()}"
    create_own_private_dir(folder)
    return folder


def built_once(path: Path, build: Callable[[Path], None]) -> float:
    """Seconds spent making `path` with `build` (0 when it was there already). `build` writes
    to a file beside it that replaces it when complete, one build at a time: two runs at once
    built the same SQLite file together and one failed with "database is locked"."""
    partial = path.with_name(f"{path.name}.partial")
    with exclusive_lock(
        path.with_name(f"{path.name}.lock"),
        on_wait=lambda: print(f"waiting for another run building {path}", file=sys.stderr),
    ):
        if path.exists():
            return 0.0
        started = time.perf_counter()
        for leftover in path.parent.glob(f"{partial.name}*"):  # a build that was stopped
            leftover.unlink()
        build(partial)
        partial.rename(path)
        return time.perf_counter() - started
