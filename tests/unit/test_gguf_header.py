"""GGUF headers read without loading the model (`gguf_header.py`), and what `config check`
refuses or warns of from them: files cut short, adapters given as models and the reverse,
adapters for another architecture, contexts longer than the training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.cli import app
from smallfirst.config import BUNDLED_MODEL
from smallfirst.gguf_header import CutShort, NotGguf, read_header

gguf = pytest.importorskip("gguf")  # a dev dependency: it writes the files here


def write_gguf(path: Path, arch: str, *, adapter: bool = False, context: int = 0) -> Path:
    """A small GGUF file: two tensors (F32 and F16), a model's or an adapter's type."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.ADAPTER if adapter else gguf.GGUFType.MODEL)
    if context:
        writer.add_context_length(context)
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])  # an array: stepped over
    writer.add_tensor("one", np.ones((4, 8), dtype=np.float32))
    writer.add_tensor("two", np.ones((3, 5), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_bundled_models_tensors_end_where_its_file_does() -> None:
    header = read_header(resolve_model_path(BUNDLED_MODEL))
    assert (header.kind, header.architecture, header.trained_context) == ("model", "llama", 8192)
    assert header.data_end == header.size


def test_a_written_file_is_read_back_and_a_cut_one_is_told(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", context=256)
    header = read_header(path)
    assert (header.kind, header.trained_context, header.cut_short) == ("model", 256, False)
    assert header.data_end is not None
    assert header.data_end <= header.size
    with path.open("r+b") as file:
        file.truncate(header.data_end - 1)  # the last tensor's last byte is gone
    assert read_header(path).cut_short
    with path.open("r+b") as file:
        file.truncate(40)  # inside the metadata
    with pytest.raises(CutShort):
        read_header(path)
    path.write_bytes(b"")
    with pytest.raises(NotGguf):
        read_header(path)


def check(config: Path) -> Result:
    return CliRunner().invoke(app, ["config", "check", str(config)])


def config_of(tmp_path: Path, **fields: object) -> Path:
    entry = ", ".join(f"{key}: {value}" for key, value in fields.items())
    path = tmp_path / "smallfirst.yaml"
    path.write_text(f"models:\n  - {{id: m, tier: edge, {entry}}}\n")
    return path


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(tmp_path / "data"))


def test_an_adapter_for_another_architecture_is_refused(tmp_path: Path) -> None:
    """QA: it passed the check, then every request to the model was a 503."""
    adapter = write_gguf(tmp_path / "a.gguf", "qwen2", adapter=True)
    result = check(config_of(tmp_path, lora_path=adapter))
    assert result.exit_code == 1
    assert "a LoRA adapter for qwen2, and the model is llama" in result.output


def test_a_model_given_as_an_adapter_and_the_reverse_are_refused(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", "llama")
    adapter = write_gguf(tmp_path / "adapter.gguf", "llama", adapter=True)
    as_adapter = check(config_of(tmp_path, lora_path=model))
    assert "not a LoRA adapter (its general.type is model)" in as_adapter.output
    as_model = check(config_of(tmp_path, path=adapter))
    assert "a LoRA adapter, not a model" in as_model.output
    fine = check(config_of(tmp_path, lora_path=adapter))
    assert fine.exit_code == 0, fine.output


def test_a_model_cut_short_is_named_with_its_sizes(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", "llama")
    end = read_header(model).data_end
    assert end is not None
    with model.open("r+b") as file:
        file.truncate(end - 10)
    result = check(config_of(tmp_path, path=model))
    assert f"model file is cut short: its tensors end at byte {end:,}" in result.output


def test_a_context_longer_than_the_training_is_a_warning(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "model.gguf", "llama", context=256)
    result = check(config_of(tmp_path, path=model, context_length=1024))
    assert result.exit_code == 0
    assert "1,024 is more than the 256 tokens the model was trained on" in result.output


@pytest.mark.parametrize("alignment", [0, -8])
def test_a_bad_alignment_is_no_crash(tmp_path: Path, alignment: int) -> None:
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_int32("general.alignment", alignment)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    assert read_header(path).kind == "model"
