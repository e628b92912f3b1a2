"""What a GGUF file says of itself, read without loading it: its metadata (`general.type`,
`general.architecture`, the trained context length) and where its tensor data ends, so that
`config check` and `serve` can tell a file cut short, an adapter given as a model (or the
reverse) and an adapter llama.cpp would refuse on its model (another architecture or size, a
malformed pair) before llama.cpp is asked to load them (each passed the check, then every
request was a 503 naming no reason).

The layout (ggml's docs/gguf.md): "GGUF", version, tensor count, metadata count, the
metadata (key, type, value), the tensor infos (name, dimensions, type, offset), padding to
`general.alignment`, the tensor data. Read through mmap: the vocabulary's ~100,000 strings are
skipped, not copied (36 ms for the bundled model; the `gguf` package's GGUFReader, which
makes an array of each, took 2.1 s).
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
F16_BYTES = 2
# value type -> struct format of a scalar (8: string, 9: array)
_SCALARS = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9
# ggml tensor type -> (values per block, bytes per block), from ggml.c's type traits
BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18), 42: (64, 18),
}  # fmt: skip


class NotGguf(ValueError):
    """The file does not begin as a GGUF file does."""


class CutShort(ValueError):
    """The file ends inside its header."""


@dataclass(frozen=True)
class GgufHeader:
    metadata: dict[str, Any]  # scalars and strings; arrays are skipped
    shapes: dict[str, tuple[int, ...]]  # each tensor's dimensions, innermost first (ggml's ne)
    data_end: int | None  # where the last tensor's data ends (None: a tensor type unknown here)
    size: int  # of the file

    @property
    def kind(self) -> str | None:
        """`model`, `adapter` for a LoRA adapter, or None (`general.type`: older models have
        none)."""
        found = self.metadata.get("general.type")
        return found if isinstance(found, str) else None

    @property
    def architecture(self) -> str | None:
        found = self.metadata.get("general.architecture")
        return found if isinstance(found, str) else None

    @property
    def trained_context(self) -> int | None:
        found = self.metadata.get(f"{self.architecture}.context_length")
        return found if isinstance(found, int) else None

    @property
    def kv_bytes_per_token(self) -> int | None:
        """What llama.cpp allocates for one token of context (`kv_bytes_per_token`), or None
        when the header does not say (a per-layer head count is an array, skipped here)."""
        counts = [
            self.metadata.get(f"{self.architecture}.{key}")
            for key in (
                "block_count",
                "embedding_length",
                "attention.head_count",
                "attention.head_count_kv",
            )
        ]
        sizes = [count for count in counts if isinstance(count, int) and count > 0]
        if len(sizes) < len(counts):
            return None
        layers, embedding, heads, kv_heads = sizes
        return kv_bytes_per_token(layers, embedding, heads, kv_heads)

    @property
    def cut_short(self) -> bool:
        return self.data_end is not None and self.data_end > self.size


def kv_bytes_per_token(layers: int, embedding: int, heads: int, kv_heads: int) -> int:
    """Keys and values of one token in every layer, in llama.cpp's default cache type (f16,
    which we keep). An estimate for models whose attention heads are not embedding / heads
    wide; exact for the bundled SmolLM2 (30 layers x 2 x 3 heads x 64 x 2 bytes = 23,040)."""
    return layers * 2 * kv_heads * (embedding // heads) * F16_BYTES


def read_header(path: Path) -> GgufHeader:
    """Raises NotGguf, CutShort for a file that ends in its header, ValueError for one this
    reader does not know (a newer version), and OSError as reading does."""
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:  # an empty file included (mmap refuses those)
            raise NotGguf(f"not a GGUF file: {path}")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _Reader(data).header()


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.at = 0

    def header(self) -> GgufHeader:
        self._skip(len(MAGIC))
        version, tensors, entries = self._count("<I"), self._count("<Q"), self._count("<Q")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not known here")
        metadata = {}
        for _ in range(entries):
            key = self._string()
            value = self._value(self._count("<I"))
            if value is not _SKIPPED:
                metadata[key] = value
        shapes: dict[str, tuple[int, ...]] = {}
        ends = [self._tensor_end(shapes) for _ in range(tensors)]
        alignment = metadata.get("general.alignment")
        if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0:
            alignment = DEFAULT_ALIGNMENT  # a bad one is llama.cpp's to refuse
        start = math.ceil(self.at / alignment) * alignment
        known = None not in ends
        # no tensors: no data, and no padding before it either
        data_end = start + max((e for e in ends if e is not None), default=0) if ends else self.at
        return GgufHeader(metadata, shapes, data_end if known else None, len(self.data))

    def _tensor_end(self, shapes: dict[str, tuple[int, ...]]) -> int | None:
        """Where a tensor's data ends, from the start of the data (None: type unknown); its
        shape goes into `shapes`."""
        name = self._string()
        dims = [self._count("<Q") for _ in range(self._count("<I"))]
        shapes[name] = tuple(dims)
        kind, offset = self._count("<I"), self._count("<Q")
        if kind not in BLOCKS:
            return None
        values, nbytes = BLOCKS[kind]
        return offset + math.prod(dims) // values * nbytes

    def _value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self._unpack("<" + _SCALARS[kind])
        if kind == _STRING:
            return self._string()
        if kind != _ARRAY:
            raise ValueError(f"metadata value type {kind} is not known here")
        item, count = self._count("<I"), self._count("<Q")
        if item in _SCALARS:
            self._skip(struct.calcsize("<" + _SCALARS[item]) * count)
        elif item == _STRING:  # the vocabulary: stepped over, not decoded
            for _ in range(count):
                self._skip(self._count("<Q"))
        else:
            for _ in range(count):
                self._value(item)
        return _SKIPPED

    def _count(self, layout: str) -> int:
        found: int = self._unpack(layout)
        return found

    def _string(self) -> str:
        return self._take(self._count("<Q")).decode("utf-8", errors="replace")

    def _unpack(self, layout: str) -> Any:
        return struct.unpack(layout, self._take(struct.calcsize(layout)))[0]

    def _take(self, count: int) -> bytes:
        start = self.at
        self._skip(count)
        return self.data[start : self.at]

    def _skip(self, count: int) -> None:
        if self.at + count > len(self.data):
            raise CutShort(f"the file ends in its header ({len(self.data)} bytes)")
        self.at += count


_SKIPPED = object()


def adapter_mismatch(adapter: GgufHeader, model: GgufHeader) -> str | None:
    """Why llama.cpp would not load `adapter` on `model`, or would abort decoding with it (its
    own checks, `llama_adapter_lora_init`): tensors other than low-rank pairs (and norms, which
    it skips), a pair missing one half, a tensor the model does not have, a pair whose outer
    sizes are not the model tensor's (a LoRA made for a larger model of the same
    architecture) or whose halves differ in rank."""
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in adapter.shapes.items():
        target, _, half = name.rpartition(".")
        if half in ("lora_a", "lora_b"):
            pairs.setdefault(target, {})[half] = shape
        elif not name.endswith("_norm.weight"):
            return f"the adapter's tensor {name} is not a lora_a or lora_b half"
    for target, halves in pairs.items():
        weights = model.shapes.get(target)
        if weights is None:
            return f"the adapter changes {target}, which the model does not have"
        if len(halves) < 2:
            return f"the adapter's {target} has a {next(iter(halves))} without its other half"
        problem = _pair_problem(target, halves["lora_a"], halves["lora_b"], weights, model)
        if problem:
            return problem
    return None


def _pair_problem(
    target: str,
    a: tuple[int, ...],
    b: tuple[int, ...],
    weights: tuple[int, ...],
    model: GgufHeader,
) -> str | None:
    if len(a) < 2 or len(b) < 2 or len(weights) < 2:
        return None  # llama.cpp's to judge
    # llama.cpp reads token_embd's pair flipped (A's rows picked by token, then B)
    embeddings = target.endswith("token_embd.weight")
    if embeddings and "output.weight" not in model.shapes:
        # its output layer is token_embd too, where the flipped pair does not multiply
        return (
            f"the adapter changes {target}, which this model also uses as its output layer"
            " (tied embeddings): llama.cpp aborts decoding with such an adapter"
        )
    outer, ranks = ((b[1], a[1]), (a[0], b[0])) if embeddings else ((a[0], b[1]), (a[1], b[0]))
    if outer != (weights[0], weights[1]):
        return (
            f"the adapter's {target} is {outer[0]} x {outer[1]}, the model's {weights[0]} x"
            f" {weights[1]} (an adapter for another size of model)"
        )
    if ranks[0] != ranks[1]:
        return (
            f"the adapter's {target} pairs a lora_a of rank {ranks[0]} with a lora_b of rank"
            f" {ranks[1]}"
        )
    return None
