from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from smallfirst.errors import InvalidRequest
from smallfirst.rag.eval import (
    embed_cached,
    evaluate_collection,
    evaluate_run,
    load_beir,
    trec_order,
)
from tests.unit.rag_fakes import count_words


def test_metrics_match_a_hand_computed_case() -> None:
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d9": 1}, "q3": {"d1": 0}}
    run = {
        "q1": {"d2": 3.0, "d1": 2.0, "d3": 1.0},  # relevant at ranks 2 and 3
        "q2": {"d5": 1.0},  # nothing relevant found
        "q3": {"d1": 1.0},  # no relevant judgment: not averaged
    }
    metrics = evaluate_run(run, qrels)

    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert metrics["ndcg@10"] == pytest.approx((dcg / idcg + 0) / 2)
    assert metrics["recall@100"] == pytest.approx((1 + 0) / 2)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["n_queries"] == 2


def test_ties_follow_trec_eval_order() -> None:
    assert trec_order({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


def write_collection(
    folder: Path,
    corpus: list[dict[str, object]],
    queries: list[dict[str, object]],
    qrels: list[tuple[str, str, int]],
) -> tuple[Path, Path, Path]:
    paths = (folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels.tsv")
    paths[0].write_text("".join(json.dumps(row) + "\n" for row in corpus))
    paths[1].write_text("".join(json.dumps(row) + "\n" for row in queries))
    rows = "".join(f"{q}\t{d}\t{score}\n" for q, d, score in qrels)
    paths[2].write_text("query-id\tcorpus-id\tscore\n" + rows)
    return paths


DOCS: list[dict[str, object]] = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
ASKED: list[dict[str, object]] = [{"id": f"q{i}", "text": f"question {i}"} for i in range(3)]


def test_judged_queries_with_text_are_scored_and_mismatches_are_told(tmp_path: Path) -> None:
    """As BEIR scores them: a judged document missing from the corpus stays in the
    judgments (a miss no method can avoid); queries that cannot be asked are left out."""
    paths = write_collection(
        tmp_path,
        DOCS,
        [*ASKED, {"id": "q3"}, {"id": "unjudged", "text": "asked but never judged"}],
        [
            ("q0", "d0", 1),
            ("q0", "gone0", 2),  # scored as missed
            ("q1", "gone1", 1),  # q1's only relevant document is missing: it scores 0
            ("q2", "d2", 0),  # judged, nothing relevant: skipped by the protocol, no warning
            ("q3", "d1", 1),  # no text
            ("x1", "d1", 1),  # not in the queries file
        ],
    )
    collection = load_beir(*paths)

    assert [q["id"] for q in collection.queries] == ["q0", "q1"]
    assert collection.qrels == {"q0": {"d0": 1, "gone0": 2}, "q1": {"gone1": 1}}
    assert collection.warnings == (
        f"qrels rows whose document is not in {paths[0]}: 2 scored as missed (gone0, gone1)",
        f"judged queries missing from {paths[1]}: 1 left out (x1)",
        f"judged queries without text in {paths[1]}: 1 left out (q3)",
    )


def test_a_warning_names_three_ids_and_counts_them_all(tmp_path: Path) -> None:
    judged = [("q0", "d0", 1), *((f"x{i}", "d0", 1) for i in range(5))]
    collection = load_beir(*write_collection(tmp_path, DOCS, ASKED, judged))
    assert collection.warnings[0].endswith(": 5 left out (x0, x1, x2, ...)")


@pytest.mark.parametrize(
    ("queries", "qrels", "expected"),
    [
        ([], [("q0", "d0", 1)], "the queries file {queries} holds no queries"),
        (ASKED, [], "the qrels file {qrels} holds no judgments"),
        (ASKED, [("q0", "nope", 1)], "nothing to evaluate: qrels rows whose document is not in"),
        (ASKED, [("zzz", "d0", 1)], "nothing to evaluate: judged queries missing from"),
        ([{"id": "q0"}], [("q0", "d0", 1)], "nothing to evaluate: judged queries without text"),
        (ASKED, [("q0", "d0", 0)], "nothing to evaluate: no query in {qrels} has a relevant"),
    ],
)
def test_input_where_nothing_can_be_scored_is_refused(
    tmp_path: Path,
    queries: list[dict[str, object]],
    qrels: list[tuple[str, str, int]],
    expected: str,
) -> None:
    corpus_path, queries_path, qrels_path = write_collection(tmp_path, DOCS, queries, qrels)
    with pytest.raises(InvalidRequest) as refused:
        load_beir(corpus_path, queries_path, qrels_path)
    assert refused.value.message.startswith(expected.format(queries=queries_path, qrels=qrels_path))


def test_an_empty_corpus_is_refused_by_name(tmp_path: Path) -> None:
    paths = write_collection(tmp_path, [], ASKED, [("q0", "d0", 1)])
    with pytest.raises(InvalidRequest, match=f"^the corpus {paths[0]} holds no documents$"):
        load_beir(*paths)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"text": "no id"}', ':2: the row has no "_id" or "id"'),
        ('{"id": "d9", "text": ', ":2: not valid JSON (Expecting value at column 22)"),
        ("[1, 2]", ":2: expected a JSON object, not an array"),
        ('{"id": ["d9"]}', ":2: the id must be a string, not an array"),
        ('{"id": "d9", "text": 5}', ':2: "text" must be a string, not an integer'),
    ],
)
def test_a_bad_corpus_row_is_named_by_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    corpus, queries, qrels = write_collection(tmp_path, DOCS[:1], ASKED, [("q0", "d0", 1)])
    corpus.write_text(corpus.read_text() + line + "\n")
    with pytest.raises(InvalidRequest) as refused:
        load_beir(corpus, queries, qrels)
    assert refused.value.message == f"{corpus}{expected}"


def test_a_bad_score_is_named_by_file_and_line(tmp_path: Path) -> None:
    paths = write_collection(tmp_path, DOCS, ASKED, [("q0", "d0", 1)])
    paths[2].write_text(paths[2].read_text() + "q1\td1\tabc\n")
    with pytest.raises(InvalidRequest, match=r":3: the score 'abc' is not a whole number$"):
        load_beir(*paths)


def test_beir_ids_may_be_under_underscore_id_and_numbers(tmp_path: Path) -> None:
    paths = write_collection(
        tmp_path, [{"_id": 7, "text": "seven"}], [{"_id": "q", "text": "7?"}], [("q", "7", 1)]
    )
    collection = load_beir(*paths)
    assert collection.corpus == [{"id": "7", "title": "", "text": "seven"}]
    assert collection.qrels == {"q": {"7": 1}}
    assert collection.warnings == ()


def test_an_id_used_twice_replaces_the_earlier_row_with_a_warning(tmp_path: Path) -> None:
    """As published corpora have them: the evaluation goes on (the later row counts, as it
    always did here) and says so."""
    docs = [*DOCS, {**DOCS[0], "text": "a later copy"}]
    paths = write_collection(tmp_path, docs, ASKED, [("q0", "d0", 1)])
    collection = load_beir(*paths)
    assert [d["text"] for d in collection.corpus if d["id"] == "d0"] == ["a later copy"]
    assert collection.warnings[0] == f"ids used again in {paths[0]}: 1 replaced (d0)"


def test_files_saved_with_a_bom_are_read(tmp_path: Path) -> None:
    """As Windows tools save UTF-8: a corpus was "not valid JSON", qrels had "no header"."""
    paths = write_collection(tmp_path, DOCS, ASKED, [("q0", "d0", 2)])
    for path in paths:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    collection = load_beir(*paths)
    assert collection.qrels == {"q0": {"d0": 2}}
    assert len(collection.corpus) == 3


class TokenCountingOnly:
    """An embedder for the chunker that fails the test if asked for a vector."""

    def __init__(self, threads: int = 1) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return count_words(text)

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        raise AssertionError(f"embedded {len(texts)} texts for a BM25-only evaluation")


def test_a_bm25_evaluation_embeds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, `rag eval --method bm25` embedded the whole corpus first (minutes for a big
    one) and never read a vector."""
    monkeypatch.setattr("smallfirst.embed.LocalEmbedder", TokenCountingOnly)
    docs = [{"id": f"d{i}", "text": f"document {i} about topic{i}"} for i in range(3)]
    asked = [{"id": f"q{i}", "text": f"topic{i}"} for i in range(3)]
    collection = load_beir(*write_collection(tmp_path, docs, asked, [("q1", "d1", 1)]))

    results = evaluate_collection(collection, ["bm25"])

    assert results["bm25"]["ndcg@10"] == 1.0


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This user's cache in `tmp_path`, under the usual umask."""
    monkeypatch.setenv("SMALLFIRST_CACHE_DIR", str(tmp_path / "cache"))
    umask = os.umask(0o022)
    try:
        yield tmp_path / "cache"
    finally:
        os.umask(umask)


class CountingEmbedder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.full((len(texts), 4), 0.5, dtype=np.float32)


def test_corpus_embeddings_are_cached_for_this_user_only(user_cache: Path) -> None:
    """They were kept in a folder of a fixed name in the shared temp dir, 0755 with 0644
    files: every user of the machine could read the vectors of a corpus."""
    embed = CountingEmbedder()
    first = embed_cached(["one document", "another"], embed, "model-x")
    again = embed_cached(["one document", "another"], embed, "model-x")
    assert embed.calls == 1
    assert np.array_equal(first, again)
    [folder] = user_cache.iterdir()
    [saved] = folder.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (saved.suffix, stat.S_IMODE(saved.stat().st_mode)) == (".npy", 0o600)


def test_corpus_embeddings_stopped_while_saved_are_made_again(
    user_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were saved in place: a file cut short stopped every later evaluation of the
    corpus with numpy's error."""
    save = np.save

    def stopped_halfway(path: Path, vectors: npt.NDArray[np.float32]) -> None:
        Path(path).write_bytes(b"\x93NUMPY")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        embed_cached(["one document"], CountingEmbedder(), "model-x")
    monkeypatch.setattr(np, "save", save)
    embed = CountingEmbedder()
    assert embed_cached(["one document"], embed, "model-x").shape == (1, 4)
    assert embed.calls == 1
