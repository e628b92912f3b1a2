"""A data dir that is a symlink to nothing (a disk that is not mounted): `serve`, `config
check` and the rag commands say so in one line, and create nothing on the wrong disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.paths import broken_link_in

runner = CliRunner()


@pytest.fixture
def dangling(tmp_path: Path) -> Path:
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "unmounted")
    return link


def test_a_broken_link_is_found_at_the_path_or_a_folder_above_it(
    tmp_path: Path, dangling: Path
) -> None:
    target = tmp_path / "unmounted"
    assert broken_link_in(dangling) == f"it is a symlink to {target}, which does not exist"
    assert broken_link_in(dangling / "rag") == (
        f"{dangling} is a symlink to {target}, which does not exist"
    )
    assert broken_link_in(tmp_path / "not-yet" / "made") is None
    assert broken_link_in(tmp_path) is None


@pytest.mark.parametrize("command", [["config", "check"], ["serve"], ["chat", "Hi"]])
def test_serve_and_config_check_refuse_a_data_dir_linked_to_nothing(
    tmp_path: Path, dangling: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Before: `serve` and `chat` stopped with a traceback (FileExistsError), `config check`
    said OK."""
    started: list[Any] = []
    monkeypatch.setattr("smallfirst.server.create_app", lambda settings: settings)
    monkeypatch.setattr("smallfirst.server.runner.run_server", lambda *args: started.append(args))
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(dangling))
    result = runner.invoke(app, command)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: environment SMALLFIRST__DATA_DIR: data_dir: cannot write {dangling}: it is a"
        f" symlink to {tmp_path / 'unmounted'}, which does not exist\n"
    )
    assert started == []
    assert not (tmp_path / "unmounted").exists()


@pytest.mark.parametrize(
    "command",
    [["ingest", "DOCS", "-c", "kb"], ["search", "q", "-c", "kb"], ["collections"], ["reindex"]],
)
def test_rag_commands_refuse_a_data_dir_linked_to_nothing(
    tmp_path: Path, dangling: Path, command: list[str]
) -> None:
    """Before: `ingest` said "cannot open the store in DIR: File exists", the others that
    nothing was ingested there."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Alpha notes.\n")
    args = [str(docs) if arg == "DOCS" else arg for arg in command]
    result = runner.invoke(app, ["rag", *args, "--data-dir", str(dangling)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: cannot use the data dir {dangling}: it is a symlink to"
        f" {tmp_path / 'unmounted'}, which does not exist\n"
    )
    assert not (tmp_path / "unmounted").exists()
