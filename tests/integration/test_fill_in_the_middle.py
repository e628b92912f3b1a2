"""`suffix` on /v1/completions (fill in the middle, as code editors ask for completions) with
the real engine. The bundled model has no FIM tokens, so a copy of it is written whose
metadata names three of its special tokens as prefix, suffix and middle marks: the prompt the
model reads must be laid out with them, and a model without them refuses by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import pytest

from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.config import BUNDLED_MODEL
from tests.integration.conftest import Server, start_server

pytestmark = pytest.mark.integration
MARKS = {"pre": 8, "suf": 9, "mid": 10}  # <issue_start>, <issue_comment>, <issue_closed>
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
STREAMED = {"model": "coder", "max_tokens": 12, "temperature": 0, "stream": True}


def model_with_fim_marks(path: Path) -> Path:
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(resolve_model_path(BUNDLED_MODEL))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(path, arch=arch, endianess=reader.endianess)
    marks = {
        f"tokenizer.ggml.fim_{name}_token_id": MetadataDetails(gguf.GGUFValueType.UINT32, token)
        for name, token in MARKS.items()
    }
    copy_with_new_metadata(reader, writer, marks, [])
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("fim")
    coder = model_with_fim_marks(directory / "coder.gguf")
    models = [
        {"id": "plain", "tier": "edge", "context_length": 512},
        {"id": "coder", "tier": "onprem", "context_length": 512, "path": str(coder)},
    ]
    started = start_server({"models": models}, directory)
    yield started
    started.stop()


def complete(server: Server, **body: Any) -> httpx.Response:
    request = {"model": "coder", "max_tokens": 12, "temperature": 0, **body}
    return httpx.post(f"{server.url}/v1/completions", json=request, timeout=120)


def tokens_of(server: Server, text: str) -> list[int]:
    body = {"model": "coder", "prompt": text, "add_special_tokens": False}
    return list(httpx.post(f"{server.url}/tokenize", json=body, timeout=60).json()["tokens"])


def test_the_model_reads_prefix_and_suffix_between_its_marks(server: Server) -> None:
    laid_out = [
        MARKS["pre"],
        *tokens_of(server, PREFIX),
        MARKS["suf"],
        *tokens_of(server, SUFFIX),
        MARKS["mid"],
    ]
    filled = complete(server, prompt=PREFIX, suffix=SUFFIX, logprobs=1)
    assert filled.status_code == 200, filled.text
    by_ids = complete(server, prompt=laid_out, logprobs=1)
    ours, reference = (r.json()["choices"][0] for r in (filled, by_ids))
    assert ours["text"] == reference["text"]
    assert ours["logprobs"]["token_logprobs"] == pytest.approx(
        reference["logprobs"]["token_logprobs"], abs=1e-4
    )
    assert filled.json()["usage"]["prompt_tokens"] == len(laid_out)
    plain_prompt = complete(server, prompt=PREFIX)  # the suffix changes what is read
    assert plain_prompt.json()["usage"]["prompt_tokens"] < len(laid_out)


def test_a_streamed_infill_is_the_same_answer(server: Server) -> None:
    whole = complete(server, prompt=PREFIX, suffix=SUFFIX).json()["choices"][0]["text"]
    with httpx.stream(
        "POST",
        f"{server.url}/v1/completions",
        json={**STREAMED, "prompt": PREFIX, "suffix": SUFFIX},
        timeout=120,
    ) as response:
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")
        ]
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == whole


def test_a_model_without_fim_tokens_says_so(server: Server) -> None:
    response = complete(server, model="plain", prompt=PREFIX, suffix=SUFFIX)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "suffix"
    assert "cannot fill in the middle" in error["message"]
