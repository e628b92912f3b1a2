"""A client's `seed` as llama.cpp's 32-bit sampling seed (`llamacpp_sampling.sampling_seed`):
every seed is reproducible, and none is llama.cpp's "draw a random seed"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smallfirst.backends.llamacpp_sampling import RANDOM_SEED, sampling_seed
from smallfirst.choices import one_choice
from smallfirst.types import ChatRequest

SEEDS = [0, 1, 42, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**63, 2**64, -1, -(2**63), 10**30]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_seed_is_a_32_bit_seed_that_is_not_the_random_one(seed: int) -> None:
    assert 0 <= sampling_seed(seed) < RANDOM_SEED


@pytest.mark.parametrize("hash_seed", ["0", "1"])
def test_a_seed_is_the_same_in_every_process(hash_seed: str) -> None:
    """A client's seed reproduces an answer on a restarted gateway: the mapping may not
    depend on the process (as Python's salted `hash` of a string would)."""
    script = (
        "from smallfirst.backends.llamacpp_sampling import sampling_seed;"
        f"print([sampling_seed(seed) for seed in {SEEDS!r}])"
    )
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    printed = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == str([sampling_seed(seed) for seed in SEEDS])


def test_seeds_llama_cpp_takes_are_its_own_and_others_do_not_wrap_onto_them() -> None:
    assert [sampling_seed(seed) for seed in (0, 1, 42, 2**32 - 2)] == [0, 1, 42, 2**32 - 2]
    # modulo 2**32 (ctypes' uint32), 0, 2**32 and 2**64 were one seed; -1 and 2**32 - 1
    # were llama.cpp's random seed
    mapped = {sampling_seed(seed) for seed in SEEDS}
    assert len(mapped) == len(SEEDS)


@pytest.mark.parametrize("seed", [7, 2**32 - 3, 2**63 - 1, -2])
def test_each_choice_samples_with_a_seed_of_its_own(seed: int) -> None:
    request = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 128, "seed": seed}
    )
    seeds = {sampling_seed(one_choice(request, index).seed or 0) for index in range(128)}
    assert len(seeds) == 128
