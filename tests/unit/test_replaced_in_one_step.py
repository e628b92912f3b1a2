"""`replaced_in_one_step` removes what writers killed outright left beside its target, and
never what a running writer is still writing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallfirst.paths import replaced_in_one_step


@pytest.fixture
def running_pid() -> Iterator[int]:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def ended_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_killed_writers_partial_is_removed_and_a_running_ones_kept(
    tmp_path: Path, running_pid: int
) -> None:
    """Each one a SIGKILL left stayed for good, up to the size of the file it was writing."""
    target = tmp_path / "model.npz"
    killed = tmp_path / f".partial-{ended_pid()}-model.npz"
    running = tmp_path / f".partial-{running_pid}-model.npz"
    other_target = tmp_path / f".partial-{ended_pid()}-other.npz"
    for path in (killed, running, other_target):
        path.write_bytes(b"half")

    with replaced_in_one_step(target) as aside:
        aside.write_bytes(b"whole")

    assert target.read_bytes() == b"whole"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [target.name, running.name, other_target.name]
    )
