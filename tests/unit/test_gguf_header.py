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
from smallfirst.gguf_header import BLOCKS, CutShort, NotGguf, read_header

gguf = pytest.importorskip("gguf")  # a dev dependency: it writes the files here


def write_gguf(
    path: Path,
    arch: str,
    *,
    adapter: bool = False,
    context: int = 0,
    width: int = 8,
    typed: bool = True,
    tensors: dict[str, tuple[int, ...]] | None = None,
    adapter_type: str = "lora",
) -> Path:
    """A small GGUF file: a model's two tensors (F32 and F16), or an adapter's low-rank pair
    for the first (`width`: the size it is made for, 8 being the model's); `tensors` (numpy
    shapes) instead of those."""
    writer = gguf.GGUFWriter(path, arch)
    if typed:
        writer.add_type(gguf.GGUFType.ADAPTER if adapter else gguf.GGUFType.MODEL)
    if adapter and adapter_type:
        writer.add_string("adapter.type", adapter_type)
    if context:
        writer.add_context_length(context)
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])  # an array: stepped over
    if tensors is not None:
        for name, shape in tensors.items():
            writer.add_tensor(name, np.ones(shape, dtype=np.float32))
    elif adapter:
        writer.add_tensor("one.lora_a", np.ones((2, width), dtype=np.float32))
        writer.add_tensor("one.lora_b", np.ones((4, 2), dtype=np.float32))
    else:
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
    assert "not a LoRA adapter (its general.type is model;" in as_adapter.output
    as_model = check(config_of(tmp_path, path=adapter))
    assert "a LoRA adapter, not a model" in as_model.output
    fine = check(config_of(tmp_path, path=model, lora_path=adapter))
    assert fine.exit_code == 0, fine.output


def test_an_adapter_for_another_size_of_model_is_refused(tmp_path: Path) -> None:
    """Same architecture, other width (a Llama-8B LoRA on a 1B model): llama.cpp refused it
    at load, and every request was a 503 (review)."""
    model = write_gguf(tmp_path / "model.gguf", "llama")
    wider = write_gguf(tmp_path / "wider.gguf", "llama", adapter=True, width=16)
    result = check(config_of(tmp_path, path=model, lora_path=wider))
    assert result.exit_code == 1
    assert "the adapter's one is 16 x 4, the model's 8 x 4" in result.output
    fitting = write_gguf(tmp_path / "fitting.gguf", "llama", adapter=True)
    assert check(config_of(tmp_path, path=model, lora_path=fitting)).exit_code == 0


# numpy shapes: ggml's dimensions reversed. The model's "one" is 8 wide and 4 high.
PAIR = {"one.lora_a": (2, 8), "one.lora_b": (4, 2)}


@pytest.mark.parametrize(
    ("tensors", "adapter_type", "said"),
    [
        (PAIR, "control_vector", "not a LoRA adapter (its adapter.type is control_vector;"),
        (PAIR, "", "not a LoRA adapter (it has no adapter.type;"),
        ({"one.lora_a": (2, 8)}, "lora", "one has a lora_a without its other half"),
        (
            {**PAIR, "one.lora_b": (4, 3)},
            "lora",
            "pairs a lora_a of rank 2 with a lora_b of rank 3",
        ),
        ({**PAIR, "one.scale": (4,)}, "lora", "tensor one.scale is not a lora_a or lora_b half"),
        (
            {"token_embd.weight.lora_a": (32, 2), "token_embd.weight.lora_b": (8, 2)},
            "lora",
            "also uses as its output layer (tied embeddings): llama.cpp aborts decoding",
        ),
    ],
)
def test_an_adapter_llama_cpp_refuses_or_aborts_on_is_refused(
    tmp_path: Path, tensors: dict[str, tuple[int, ...]], adapter_type: str, said: str
) -> None:
    """QA: these passed `config check` and `serve`; llama.cpp then refused each at load (every
    request to the model was a 503 naming no reason), or aborted the server on the first
    answer (a LoRA on token_embd of the bundled model, whose output layer it is)."""
    model = write_gguf(
        tmp_path / "model.gguf", "llama", tensors={"one": (4, 8), "token_embd.weight": (32, 8)}
    )
    adapter = write_gguf(
        tmp_path / "a.gguf", "llama", adapter=True, tensors=tensors, adapter_type=adapter_type
    )
    result = check(config_of(tmp_path, path=model, lora_path=adapter))
    assert result.exit_code == 1
    assert said in result.output


def test_adapters_llama_cpp_loads_pass(tmp_path: Path) -> None:
    """A norm beside the pairs (llama.cpp skips it), and a pair on token_embd read flipped
    (A's rows picked by token) for a model with an output layer of its own."""
    model = write_gguf(
        tmp_path / "model.gguf",
        "llama",
        tensors={"one": (4, 8), "token_embd.weight": (32, 8), "output.weight": (32, 8)},
    )
    embeddings = {"token_embd.weight.lora_a": (32, 2), "token_embd.weight.lora_b": (8, 2)}
    for name, tensors in {
        "norm": {**PAIR, "blk.0.attn_norm.weight": (8,)},
        "embd": embeddings,
    }.items():
        adapter = write_gguf(tmp_path / f"{name}.gguf", "llama", adapter=True, tensors=tensors)
        result = check(config_of(tmp_path, path=model, lora_path=adapter))
        assert result.exit_code == 0, result.output


def test_a_model_with_no_general_type_given_as_an_adapter_says_so(tmp_path: Path) -> None:
    old_model = write_gguf(tmp_path / "old.gguf", "llama", typed=False)
    result = check(config_of(tmp_path, lora_path=old_model))
    assert "not a LoRA adapter (it has no general.type; an adapter's is adapter)" in result.output


def test_block_sizes_are_ggmls() -> None:
    """A wrong size would call a whole file cut short, or miss one that is (gguf-py's Q8_1
    entry is stale: ggml's block is 36 bytes)."""
    for kind, (values, nbytes) in BLOCKS.items():
        if kind in gguf.GGML_QUANT_SIZES and kind != gguf.GGMLQuantizationType.Q8_1:
            assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)] == (values, nbytes)


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
    header = read_header(path)
    assert (header.architecture, header.cut_short) == ("llama", False)
