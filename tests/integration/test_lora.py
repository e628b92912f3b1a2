"""A LoRA adapter (`lora_path`) on the bundled model, decoded in slots. The adapters are made
here with `gguf`, as `convert_lora_to_gguf.py` lays them out: an adapter whose B matrices are
zero must answer exactly as the model alone, and a small random one must change the answers
as it changes them under `llama_cpp.Llama` (the reference), in every slot alike.

(A large random adapter, B entries ~0.3 on weights ~0.03, makes the network chaotic: greedy
answers then depend on float rounding, and differ between one and two sequences decoded
together, and from `Llama`, in the first decimal of a logprob. Hence the small one.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import numpy as np
import pytest

from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.cli.common import adapter_file_problems
from smallfirst.config import BUNDLED_MODEL, Settings
from smallfirst.errors import ModelUnavailable
from tests.integration.conftest import Server, start_server

pytestmark = pytest.mark.integration
RANK = 8
SMALL = 0.05  # B entries ~0.015: about the size of the model's own weights
PROMPTS = ["The capital of France is", "Water boils at", "1, 2, 3, 4,"]


def model_shape() -> tuple[str, int, int]:
    """Architecture, embedding width and layer count of the bundled GGUF."""
    reader = gguf.GGUFReader(resolve_model_path(BUNDLED_MODEL))
    arch = reader.fields["general.architecture"].contents()
    width = reader.fields[f"{arch}.embedding_length"].contents()
    layers = reader.fields[f"{arch}.block_count"].contents()
    return str(arch), int(width), int(layers)


def write_adapter(
    path: Path, *, b_scale: float, adapter_type: str = "lora", b_rank: int = RANK
) -> Path:
    """A LoRA on every layer's query projection (square for this model): A is random, B is
    random times `b_scale` (0: the adapter adds nothing)."""
    arch, width, layers = model_shape()
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, adapter_type)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(RANK))
    for layer in range(layers):
        a = rng.normal(0, 0.3, (RANK, width)).astype(np.float32)
        b = (rng.normal(0, 0.3, (width, b_rank)) * b_scale).astype(np.float32)
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_a", a)
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("lora")
    adapters = {
        "zero-lora": write_adapter(directory / "zero.gguf", b_scale=0.0),
        "small-lora": write_adapter(directory / "small.gguf", b_scale=SMALL),
    }
    models: list[dict[str, Any]] = [
        {"id": "base", "tier": "edge", "context_length": 512, "parallel": 2}
    ]
    models += [
        {"id": name, "tier": "onprem", "context_length": 512, "parallel": 2, "lora_path": str(p)}
        for name, p in adapters.items()
    ]
    started = start_server({"models": models}, directory)
    yield started
    started.stop()


def answers(server: Server, model: str) -> list[tuple[str, list[float]]]:
    result = []
    for prompt in PROMPTS:
        body = {"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0, "logprobs": 1}
        response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        result.append((choice["text"], choice["logprobs"]["token_logprobs"]))
    return result


def test_a_zero_adapter_answers_as_the_model_alone(server: Server) -> None:
    base, zero = answers(server, "base"), answers(server, "zero-lora")
    assert [text for text, _ in zero] == [text for text, _ in base]
    for (_, with_adapter), (_, alone) in zip(zero, base, strict=True):
        assert with_adapter == pytest.approx(alone, abs=1e-4)


def test_a_small_adapter_changes_the_answers_as_llama_cpp_does(
    server: Server, tmp_path: Path
) -> None:
    base, changed = answers(server, "base"), answers(server, "small-lora")
    shift = max(
        abs(a - b)
        for (_, ours), (_, alone) in zip(changed, base, strict=True)
        for a, b in zip(ours, alone, strict=False)
    )
    assert shift > 0.01  # the adapter is applied
    reference = llama_cpp_answers(write_adapter(tmp_path / "small.gguf", b_scale=SMALL))
    assert [text for text, _ in changed] == [text for text, _ in reference]
    # The adapter's float32 products take another CPU kernel for a batch of one token than
    # for several (llama.cpp's sgemm), and a slot reads a prompt's last token on its own, so
    # its logits differ in the third decimal on some CPUs (AVX2: 0.0008-0.0023), and the
    # tokens after it a little more. The base model's quantized products agree to the bit.
    ours_first = [ours[0] for _, ours in changed]
    assert ours_first == pytest.approx([theirs[0] for _, theirs in reference], abs=5e-3)
    apart = max(
        abs(a - b)
        for (_, ours), (_, theirs) in zip(changed, reference, strict=True)
        for a, b in zip(ours, theirs, strict=True)
    )
    assert apart < shift / 10  # the adapter's change, as llama.cpp makes it, within 10%
    # and in every slot alike: two answers decoded together equal the one alone
    body = {"model": "small-lora", "prompt": PROMPTS[0], "max_tokens": 8, "temperature": 0}
    both = httpx.post(f"{server.url}/v1/completions", json={**body, "n": 2}, timeout=120)
    assert [choice["text"] for choice in both.json()["choices"]] == [changed[0][0]] * 2


def llama_cpp_answers(adapter: Path) -> list[tuple[str, list[float]]]:
    """The same greedy completions from `llama_cpp.Llama` with the adapter, in this process."""
    from llama_cpp import Llama

    llm = Llama(
        str(resolve_model_path(BUNDLED_MODEL)),
        n_ctx=512,
        lora_path=str(adapter),
        logits_all=True,  # for logprobs
        verbose=False,
    )
    try:
        result = []
        for prompt in PROMPTS:
            out: Any = llm.create_completion(prompt, max_tokens=8, temperature=0, logprobs=1)
            choice = out["choices"][0]
            result.append(
                (choice["text"], [float(v) for v in choice["logprobs"]["token_logprobs"]])
            )
        return result
    finally:
        llm.close()


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"adapter_type": "control_vector"}, "its adapter.type is control_vector"),
        ({"b_rank": RANK // 2}, f"pairs a lora_a of rank {RANK} with a lora_b of rank {RANK // 2}"),
    ],
)
def test_an_adapter_llama_cpp_refuses_is_refused_by_the_config_check(
    tmp_path: Path, fault: dict[str, Any], said: str
) -> None:
    """Both passed `config check` and `serve`; llama.cpp refused them at load, and every
    request to the model was a 503."""
    adapter = write_adapter(tmp_path / "bad.gguf", b_scale=SMALL, **fault)
    with pytest.raises(ModelUnavailable):
        LlamaEngine(
            resolve_model_path(BUNDLED_MODEL),
            n_ctx=256,
            n_threads=None,
            n_batch=64,
            lora_path=str(adapter),
        )
    settings = Settings.model_validate(
        {"models": [{"id": "m", "tier": "edge", "lora_path": str(adapter)}]}
    )
    assert [said in problem for problem in adapter_file_problems(settings)] == [True]
