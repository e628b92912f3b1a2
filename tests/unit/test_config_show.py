"""`config show` prints the configuration in effect; it and `config check --json` never print
a secret the config holds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.config_file import load_settings

REMOTE_WITH_PASSWORD = """server: {api_keys: [plain-secret-key]}
models:
  - {id: local, tier: edge, path: models/not-here-yet.gguf}
  - {id: remote, tier: cloud, backend: openai_compat, base_url: "https://me:hunter2@example.com/v1"}
"""


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(folder))
    return folder


def test_config_show_prints_the_file_the_environment_and_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("routing: {router: cascade, cascade: {min_mean_logprob: -.inf}}\n")
    monkeypatch.setenv("SMALLFIRST__SERVER__PORT", "9001")
    result = CliRunner().invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["routing"]["router"] == "cascade"  # the file
    assert shown["server"]["port"] == 9001  # the environment
    assert shown["routing"]["cascade"]["max_tokens"] == 512  # a default
    assert shown["models"][0]["id"] == "smollm2-135m"
    printed = tmp_path / "printed.yaml"  # what it prints reads as the same config
    printed.write_text(result.stdout)
    assert load_settings(printed, env={}).model_dump() == load_settings(path).model_dump()


def test_config_show_reads_a_config_whose_model_files_are_elsewhere(tmp_path: Path) -> None:
    """`config check` refuses a missing model file; `config show` only reads the settings."""
    path = tmp_path / "gateway.yaml"
    path.write_text(REMOTE_WITH_PASSWORD)
    result = CliRunner().invoke(app, ["config", "show", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["models"][0]["path"] == str(tmp_path / "models" / "not-here-yet.gguf")
    assert shown["models"][1]["read_timeout_s"] == 120.0


@pytest.mark.parametrize(
    "command", [["show"], ["show", "--json"], ["check", "--json"]], ids=" ".join
)
def test_the_printed_config_holds_no_secret(tmp_path: Path, command: list[str]) -> None:
    """A plain API key is printed as its hash, a password in a `base_url` as `***`
    (`config check --json` printed `https://me:hunter2@...` as it was)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "not-here-yet.gguf").write_bytes(b"GGUF" + bytes(60))
    path = tmp_path / "gateway.yaml"
    path.write_text(REMOTE_WITH_PASSWORD)
    result = CliRunner().invoke(app, ["config", *command, "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "plain-secret-key" not in result.stdout
    assert "hunter2" not in result.stdout
    shown = yaml.safe_load(result.stdout)  # JSON is YAML
    digest = hashlib.sha256(b"plain-secret-key").hexdigest()
    assert shown["server"]["api_keys"] == [f"sha256:{digest}"]
    assert shown["models"][1]["base_url"] == "https://me:***@example.com/v1"
