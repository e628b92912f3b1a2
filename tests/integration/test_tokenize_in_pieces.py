"""A long text that spells many special tokens is given to llama.cpp in pieces, cut where
llama.cpp cuts anyway (`llamacpp_specials.py`): its own cutting takes time that grows with the
square of the special tokens (16,000 `<|im_start|>a` took 6.6-9.4 s whole, 0.8-0.9 s in pieces).
The tokens must be exactly those of the whole text, on the bundled model's vocabulary."""

from __future__ import annotations

import ctypes
import random
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest

from smallfirst.backends import llamacpp_specials
from smallfirst.backends.llamacpp_engine import LlamaEngine, resolve_model_path
from smallfirst.config import BUNDLED_MODEL

pytestmark = pytest.mark.integration
# besides the vocabulary's special texts: white space, words, parts of special texts, UTF-8
WORDS = [" ", "  ", "\n", "\n\n", "\t", "a", "bc", "Hello", " world", "é", "中文", "7", "42"]
WORDS += ["<", "|", ">", "<|", "im_", "_end", "😀", "\u00a0", "\u2581"]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    engine = LlamaEngine(resolve_model_path(BUNDLED_MODEL), n_ctx=512, n_threads=None, n_batch=64)
    try:
        yield engine
    finally:
        engine.close()


def whole(engine: LlamaEngine, text: str, *, bos: bool, special: bool) -> list[int]:
    return list(engine.llama.tokenize(text.encode(), add_bos=bos, special=special))


@pytest.mark.parametrize("seed", range(4))
def test_pieces_cut_as_often_as_allowed_read_as_the_whole(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(llamacpp_specials, "CUT_TEXTS_LONGER_THAN", 0)
    specials = llamacpp_specials.SpecialTokens.of_vocabulary(  # cut at every safe place
        engine.llama._model.vocab, engine.vocab_size, engine.token_text, cut_every=0
    )
    monkeypatch.setattr(engine, "specials", specials)
    alphabet = [*specials.spelled, *WORDS]
    rng = random.Random(seed)
    cut = 0
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for bos in (True, False):
            for special in (True, False):
                read = engine._tokens(text, bos=bos, special=special)
                assert read == whole(engine, text, bos=bos, special=special), (text, bos, special)
        cut += len(specials.pieces(text, special=True)) > 1
    assert cut > 400  # the comparisons were of texts read in pieces


def test_a_long_text_of_special_tokens_is_read_in_short_pieces(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenize = engine.llama.tokenize
    longest = 0

    def measured(text: bytes, *args: object, **kwargs: object) -> list[int]:
        nonlocal longest
        longest = max(longest, text.count(b"<|im_start|>"))
        return tokenize(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.llama, "tokenize", measured)
    text = "<|im_start|>a" * 2_000  # eight pieces; the whole read costs the square of it
    tokens = engine.encode(text, add_special_tokens=True)
    assert longest == llamacpp_specials.CUT_EVERY
    assert tokens == whole(engine, text, bos=True, special=True)


# Texts the bundled vocabulary's last tokens become, user-defined: they overlap each other
# and themselves, as Gemma 3's line breaks and runs of spaces do.
OVERLAPPING = ["\n", "\n\n", "\n\n\n", "  ", "   ", "<a>", "<a>b", "b<a"]


def overlapping_vocabulary(path: Path) -> Path:
    """The bundled model's vocabulary alone, its last tokens made `OVERLAPPING`."""
    reader = gguf.GGUFReader(resolve_model_path(BUNDLED_MODEL))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(path, arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value = field.contents()
        if field.name == gguf.Keys.Tokenizer.LIST:
            value[-len(OVERLAPPING) :] = OVERLAPPING
        if field.name == gguf.Keys.Tokenizer.TOKEN_TYPE:
            value[-len(OVERLAPPING) :] = [int(gguf.TokenType.USER_DEFINED)] * len(OVERLAPPING)
        kind = field.types[0]
        item_kind = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=item_kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def test_texts_that_overlap_read_in_pieces_as_the_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as low_level

    llama = Llama(
        str(overlapping_vocabulary(tmp_path / "vocab.gguf")), vocab_only=True, verbose=False
    )
    monkeypatch.setattr(llamacpp_specials, "CUT_TEXTS_LONGER_THAN", 0)

    def text_of(token: int) -> str:
        piece = ctypes.create_string_buffer(256)
        size = low_level.llama_token_to_piece(llama._model.vocab, token, piece, 256, 0, True)
        return piece.raw[:size].decode("utf-8", errors="replace")

    specials = llamacpp_specials.SpecialTokens.of_vocabulary(
        llama._model.vocab, llama.n_vocab(), text_of, cut_every=0
    )
    alphabet = [*OVERLAPPING, "<|im_start|>", "a", "b", "<", ">", " ", "x\n", "é"]
    rng = random.Random(0)
    cuts = 0
    for _ in range(1_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for special in (True, False):
            pieces = specials.pieces(text, special=special)
            read = [t for piece in pieces for t in llama.tokenize(piece.encode(), False, special)]
            assert read == llama.tokenize(text.encode(), False, special), (text, special)
            cuts += len(pieces) - 1
    assert cuts > 10_000  # the comparisons were of texts read in many pieces
