"""Tokenizing a text that spells many special tokens: whole, as llama.cpp reads it (its cutting
at special tokens grows with their number squared), against in pieces, as the engine reads it
(`backends/llamacpp_specials.py`), side by side on the bundled model's vocabulary. Checks that
both give the same tokens; prints JSON: seconds per way and their ratio, per count. Then what
looking for special tokens costs in ordinary prose, with a vocabulary of Gemma 3's size (6,400
made-up special tokens): one `a|b|...` alternation and a substring test per token, against
`SpecialTokens`' trie.

    python -m benchmarks.special_token_pieces        # BENCH_ROUNDS=3 by default
    BENCH_ROUNDS=1 BENCH_COUNTS=100 python -m benchmarks.special_token_pieces   # a quick look
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

from benchmarks.common import refuse_arguments

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# occurrences of `<|im_start|>a`; 16,000 is 0.2 MB
COUNTS = [int(count) for count in os.environ.get("BENCH_COUNTS", "4000,8000,16000").split(",")]


def main() -> None:
    refuse_arguments(__doc__)
    from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path

    engine = LlamaEngine(resolve_model_path("bundled:smollm2"), n_ctx=512, n_threads=1, n_batch=64)
    results = {}
    for count in COUNTS:
        text = "<|im_start|>a" * count

        def whole(text: str = text) -> list[int]:
            return list(engine.llama.tokenize(text.encode(), add_bos=True, special=True))

        def in_pieces(text: str = text) -> list[int]:
            return engine.encode(text, add_special_tokens=True)

        if whole() != in_pieces():
            raise AssertionError(f"the pieces read differently at {count}")
        ways = {"whole": whole, "pieces": in_pieces}
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for round_ in range(ROUNDS):  # alternating, so load on the machine hits both alike
            for way in list(ways) if round_ % 2 == 0 else list(reversed(ways)):
                seconds[way].append(_timed(ways[way]))
        median = {way: statistics.median(times) for way, times in seconds.items()}
        results[str(count)] = {
            "whole_s": round(median["whole"], 3),
            "pieces_s": round(median["pieces"], 3),
            "whole_over_pieces": round(median["whole"] / median["pieces"], 1),
        }
    engine.close()
    print(json.dumps({"rounds": ROUNDS, "special_tokens": results, "prose": _prose()}, indent=2))


def _prose() -> dict[str, float]:
    """Seconds to look for 6,400 special tokens in 76 kB of prose, each way."""
    import random
    import re

    from llama_cpp import llama_cpp as flags

    from smallfirst.backends.llamacpp_specials import SpecialTokens

    texts = [f"<unused{i}>" for i in range(6_200)] + ["<start_of_turn>", "<end_of_turn>"]
    texts += [" " * size for size in range(2, 32)] + ["\n" * size for size in range(1, 32)]
    specials = SpecialTokens([(text, flags.LLAMA_TOKEN_ATTR_CONTROL) for text in texts], flags)
    words = ["the", "of", "and", "to", "in", "is", "was", "for", "that", "with", "as", "on"]
    prose = " ".join(random.Random(0).choice(words) for _ in range(20_000))
    alternation = re.compile("|".join(map(re.escape, sorted(texts, key=len, reverse=True))))

    def plainly() -> object:
        return [m.start() for m in alternation.finditer(prose)], any(
            text in prose for text in specials.spelled
        )

    def by_trie() -> object:
        return specials.pieces(prose, special=True), specials.spelled_in(prose)

    ways = {"plain": plainly, "trie": by_trie}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for round_ in range(ROUNDS):
        for way in list(ways) if round_ % 2 == 0 else list(reversed(ways)):
            seconds[way].append(_timed(ways[way]))
    median = {way: statistics.median(times) for way, times in seconds.items()}
    return {
        "plain_s": round(median["plain"], 4),
        "trie_s": round(median["trie"], 4),
        "plain_over_trie": round(median["plain"] / median["trie"], 1),
    }


def _timed(read: Callable[[], object]) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
