"""Approximate-then-exact vector search for large collections: binary codes, then rescoring.

Every embedding also keeps a 1-bit-per-dimension code (the signs: 48 bytes instead of 1,536).
A query's code is compared with all codes by Hamming distance (XOR + popcount over a matrix
32x smaller than the float one), and only the nearest candidates (5% of the rows, at least
`RESCORE_FACTOR x limit`) are scored exactly by dot product. The float scan is bound by
memory bandwidth (~10-16 ms per 100k x 384 floats on one core here); codes plus rescoring
~6 ms. Scores returned are exact dot products; what can be lost is a true neighbour whose
code falls outside the candidates. Measured on 10.7k real MiniLM embeddings with 393 queries:
candidates at 5% of rows keep recall@10 0.993 and recall@100 0.885 of the exact search
(1%: 0.943 / 0.543), see docs/rag.md. Collections below `BINARY_PREFILTER_ROWS` are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

BINARY_PREFILTER_ROWS = 50_000  # below this, the exact scan is cheap enough; never approximate
CANDIDATE_SHARE = 0.05
RESCORE_FACTOR = 10


def binary_codes(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """Sign bits of each row, packed into 64-bit words (384 dimensions -> 6 words)."""
    import numpy as np

    packed = np.packbits(matrix > 0, axis=1)
    padding = (-packed.shape[1]) % 8
    if padding:
        packed = np.pad(packed, ((0, 0), (0, padding)))
    return np.ascontiguousarray(packed).view(np.uint64)


def prefiltered_candidates(
    codes: npt.NDArray[np.uint64], query: npt.NDArray[np.float32], limit: int
) -> npt.NDArray[np.intp]:
    """Row indices of the rows whose codes are nearest to the query's, enough to rescore."""
    import numpy as np

    query_code = binary_codes(query.reshape(1, -1))[0]
    distance = np.bitwise_count(codes ^ query_code).sum(axis=1, dtype=np.uint16)
    count = min(len(codes), max(limit * RESCORE_FACTOR, int(len(codes) * CANDIDATE_SHARE)))
    if count >= len(codes):
        return np.arange(len(codes))
    return np.argpartition(distance, count - 1)[:count]
