"""The `smallfirst rag` commands end to end, with the real local embedder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli.rag import app
from smallfirst.embed import EMBEDDER_ID, get_embedder
from smallfirst.rag import SqliteChunkStore, open_store
from tests.unit.rag_fakes import minimal_pdf
from tests.unit.test_rag_ingest import index_rows

runner = CliRunner()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "router.md").write_text(
        "# Router\n\n## Fallbacks\n\nWhen the edge model fails, the router escalates to the "
        "cloud tier.\n\n## Costs\n\nEach request logs its cost in dollars.\n"
    )
    (folder / "privacy.html").write_text(
        "<html><head><title>Privacy</title></head><body><h1>Redaction</h1>"
        "<p>Email addresses are replaced by placeholders before leaving the machine.</p>"
        "</body></html>"
    )
    (folder / "notes.txt").write_text("The gateway listens on port 8080 by default.\n")
    (folder / "paper.pdf").write_bytes(minimal_pdf("Quantization shrinks models to four bits"))
    return folder


def test_ingest_then_search_as_json(docs: Path, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, ["ingest", str(docs), "--collection", "kb", "--json", *data])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["failed"]) == (4, 0)

    again = runner.invoke(app, ["ingest", str(docs), "--collection", "kb", *data])
    assert again.exit_code == 0
    assert "0 added, 0 updated, 4 unchanged, 0 removed, 0 failed, 0 ignored" in again.stdout

    for method, query, expected in [
        ("hybrid", "which port does the gateway use", "notes.txt"),
        ("bm25", "email placeholders", "privacy.html"),
        ("vector", "what happens if the small model fails", "router.md"),
        ("hybrid", "four bit quantization", "paper.pdf"),
    ]:
        found = runner.invoke(
            app, ["search", query, "-c", "kb", "-k", "2", "--method", method, "--json", *data]
        )
        assert found.exit_code == 0, found.output
        hits = json.loads(found.stdout)
        assert Path(hits[0]["source"]).name == expected, (method, query)
        assert set(hits[0]) == {
            "chunk_id",
            "score",
            "text",
            "source",
            "title",
            "heading",
            "char_start",
            "char_end",
            "shown_as",  # what citations call it, not the server's path (`rag.names`)
        }


def test_a_store_from_another_embedder_is_refused_until_reindexed(
    docs: Path, tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, ["ingest", str(docs), "-c", "kb", *data]).exit_code == 0
    store = SqliteChunkStore(tmp_path / "data" / "rag.sqlite")
    before = store.vector_search("kb", get_embedder().embed(["port"])[0], 10)
    store._db.execute("UPDATE store_settings SET value = 'old-model' WHERE key = 'embedder'")
    store.close()

    refused = runner.invoke(app, ["search", "port", "-c", "kb", *data])
    assert refused.exit_code == 2
    assert "'old-model'" in refused.stderr
    assert "smallfirst rag reindex" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    reindexed = runner.invoke(app, ["reindex", "--json", *data])
    assert reindexed.exit_code == 0, reindexed.output
    assert json.loads(reindexed.stdout) == {"chunks": len(before), "embedder": EMBEDDER_ID}
    found = runner.invoke(app, ["search", "which port", "-c", "kb", "--json", *data])
    assert found.exit_code == 0, found.output
    assert Path(json.loads(found.stdout)[0]["source"]).name == "notes.txt"


def test_ingest_says_what_it_left_out_and_names_a_broken_link(tmp_path: Path) -> None:
    folder, shared = tmp_path / "folder", tmp_path / "shared"
    folder.mkdir()
    shared.mkdir()
    (shared / "glossary.md").write_text("Glossary of gateway terms.\n")
    (folder / "notes.md").write_text("Gateway notes.\n")
    (folder / "shared_link").symlink_to("../shared")
    (folder / "loop").symlink_to(".")
    (folder / "dangling.md").symlink_to("drafts/target.md")
    unsupported = [f"sheet{i}.csv" for i in range(5)]
    for name in unsupported:
        (folder / name).write_text("a,b\n")
    data = ["--data-dir", str(tmp_path / "data")]

    result = runner.invoke(app, ["ingest", str(folder), "-c", "kb", *data])

    assert result.exit_code == 0, result.output
    assert "1 added, 0 updated, 0 unchanged, 0 removed, 1 failed, 7 ignored" in result.stdout
    shown = ", ".join(str(folder / name) for name in unsupported[:3])
    assert f"ignored, unsupported file type (5): {shown} and 2 more (--verbose" in result.stdout
    assert f"ignored, symlink loop (1): {folder / 'loop'}" in result.stdout
    assert f"ignored, symlink to outside the paths given (1): {folder / 'shared_link'}" in (
        result.stdout
    )
    assert (
        f"failed: {folder / 'dangling.md'}: broken symlink: its target drafts/target.md "
        "does not exist" in result.stderr
    )

    verbose = runner.invoke(app, ["ingest", str(folder), "-c", "kb", "-v", *data])
    assert "\n".join(f"    {folder / name}" for name in unsupported) in verbose.stdout

    as_json = json.loads(
        runner.invoke(app, ["ingest", str(folder), "-c", "kb", "--json", *data]).stdout
    )
    assert (as_json["skipped"], as_json["ignored"]) == (1, 7)
    assert as_json["ignored_by_reason"] == {
        "symlink loop": 1,
        "symlink to outside the paths given": 1,
        "unsupported file type": 5,
    }
    assert as_json["ignored_files"][str(folder / "sheet0.csv")] == "unsupported file type"


def test_bad_usage_exits_2_with_one_line(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--collection", "kb", *data])
    assert missing.exit_code == 2
    assert missing.stderr == f"Error: path not found: {tmp_path / 'nope'}\n"
    assert not (tmp_path / "data" / "rag.sqlite").exists()  # no store made for an error

    bad_method = runner.invoke(app, ["search", "q", "-c", "kb", "--method", "magic"])
    assert bad_method.exit_code == 2

    unknown = runner.invoke(app, ["search", "q", "-c", "nope", "--data-dir", str(tmp_path)])
    assert unknown.exit_code == 2
    assert "does not exist" in unknown.stderr


def test_eval_json_has_every_metric_per_method(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": f"d{i}", "title": title, "text": text})
            for i, (title, text) in enumerate(
                [
                    ("Mitochondria", "Mitochondria produce ATP through oxidative phosphorylation."),
                    ("Ribosomes", "Ribosomes translate messenger RNA into proteins."),
                    ("Photosynthesis", "Chloroplasts convert light into chemical energy."),
                ]
            )
        )
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"id": "q1", "text": "how do cells make ATP"})
        + "\n"
        + json.dumps({"id": "q2", "text": "protein synthesis from mRNA"})
        + "\n"
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\t2\nq2\td1\t1\n")

    result = runner.invoke(
        app,
        [
            "eval",
            "--corpus",
            str(corpus),
            "--queries",
            str(queries),
            "--qrels",
            str(qrels),
            "--method",
            "all",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"bm25", "vector", "hybrid"}  # the shape evaluation scripts read
    for values in metrics.values():
        assert set(values) == {"ndcg@10", "recall@100", "mrr", "p50_ms", "p95_ms"}
        assert values["recall@100"] == 1.0
    assert metrics["hybrid"]["ndcg@10"] == 1.0

    missing = runner.invoke(
        app,
        ["eval", "--corpus", str(tmp_path / "x"), "--queries", str(queries), "--qrels", str(qrels)],
    )
    assert missing.exit_code == 2


def write_eval_files(folder: Path, qrels: str) -> list[str]:
    """--corpus/--queries/--qrels arguments for two documents and two questions."""
    (folder / "corpus.jsonl").write_text(
        '{"id": "d0", "text": "Mitochondria produce ATP."}\n'
        '{"id": "d1", "text": "Ribosomes make proteins."}\n'
    )
    (folder / "queries.jsonl").write_text(
        '{"id": "q0", "text": "which organelle produces ATP"}\n'
        '{"id": "q1", "text": "protein synthesis"}\n'
    )
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return [
        *("--corpus", str(folder / "corpus.jsonl"), "--queries", str(folder / "queries.jsonl")),
        *("--qrels", str(folder / "qrels.tsv"), "--method", "bm25"),
    ]


def test_eval_warns_about_judgments_that_do_not_match_and_scores_the_rest(
    tmp_path: Path,
) -> None:
    files = write_eval_files(tmp_path, "q0\td0\t1\nq1\tgone\t1\nlost\td1\t1\n")

    result = runner.invoke(app, ["eval", *files, "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bm25"]["ndcg@10"] == 0.5  # q0 found; q1's document is not in the corpus
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 2
    assert "qrels rows whose document is not in" in warnings[0]
    assert "1 scored as missed (gone)" in warnings[0]
    assert "judged queries missing from" in warnings[1]
    assert "(lost)" in warnings[1]

    table = runner.invoke(app, ["eval", *files])
    assert table.exit_code == 0, table.output
    assert "(2 queries)" in table.stdout
    assert table.stderr.count("Warning: ") == 2


@pytest.mark.parametrize(
    ("qrels", "corpus_text", "expected"),
    [
        ("zzz\td0\t1\n", None, "nothing to evaluate: judged queries missing from"),
        ("q0\tnope\t1\n", None, "nothing to evaluate: qrels rows whose document is not in"),
        ("q0\td0\t1\n", "", "the corpus {corpus} holds no documents"),
        ("q0\td0\t1\n", '{"id": "d0"}\n{"text": "x"}\n', '{corpus}:2: the row has no "_id"'),
        ("q0\td0\t1\n", '{"id": "d0", "text": \n', "{corpus}:1: not valid JSON (Expecting"),
    ],
)
def test_eval_refuses_input_it_cannot_score_in_one_line(
    tmp_path: Path, qrels: str, corpus_text: str | None, expected: str
) -> None:
    files = write_eval_files(tmp_path, qrels)
    corpus = tmp_path / "corpus.jsonl"
    if corpus_text is not None:
        corpus.write_text(corpus_text)

    result = runner.invoke(app, ["eval", *files])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: " + expected.format(corpus=corpus))
    assert result.stderr.count("\n") == 1


def test_eval_refuses_a_method_it_does_not_have(tmp_path: Path) -> None:
    files = write_eval_files(tmp_path, "q0\td0\t1\n")
    result = runner.invoke(app, ["eval", *files, "--method", "bm42"])
    assert result.exit_code == 2
    assert result.stderr == "Error: --method must be one of bm25, vector, hybrid, all, not 'bm42'\n"


def test_without_data_dir_the_configs_data_dir_is_used_as_serve_does(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    config = tmp_path / "smallfirst.yaml"
    config.write_text(f"data_dir: {served}\n")
    ingested = runner.invoke(
        app, ["ingest", str(docs / "notes.txt"), "-c", "kb", "--config", str(config)]
    )
    assert ingested.exit_code == 0, ingested.output
    assert (served / "rag.sqlite").is_file()

    monkeypatch.setenv("SMALLFIRST__DATA_DIR", str(tmp_path / "from-env"))
    listed = runner.invoke(app, ["collections", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []  # another data dir: not the one above
    assert not (tmp_path / "from-env").exists()  # listing creates no store


def test_ingesting_a_path_that_is_gone_removes_its_documents_and_says_so(
    tmp_path: Path,
) -> None:
    docs, data = tmp_path / "docs", ["--data-dir", str(tmp_path / "data")]
    (docs / "gone").mkdir(parents=True)
    (docs / "gone" / "memo.md").write_text("Secret memo\n")
    (docs / "single.md").write_text("Cafeteria opens at 8.\n")
    paths = [str(docs / "gone"), str(docs / "single.md")]
    assert runner.invoke(app, ["ingest", *paths, "-c", "tmp", *data]).exit_code == 0
    shutil.rmtree(docs / "gone")
    (docs / "single.md").unlink()

    folder = runner.invoke(app, ["ingest", str(docs / "gone"), "-c", "tmp", *data])

    assert folder.exit_code == 0, folder.output
    assert folder.stdout == (
        "tmp: 0 added, 0 updated, 0 unchanged, 1 removed, 0 failed, 0 ignored "
        "(0 chunks written)\n"
        f"  removed 1 document that is no longer at {docs / 'gone'}\n"
    )
    found = runner.invoke(app, ["search", "secret memo", "-c", "tmp", "--json", *data])
    assert [hit["source"] for hit in json.loads(found.stdout)] == [str(docs / "single.md")]
    again = runner.invoke(app, ["ingest", str(docs / "gone"), "-c", "tmp", *data])
    assert (again.exit_code, again.stderr) == (2, f"Error: path not found: {docs / 'gone'}\n")

    last = runner.invoke(app, ["ingest", str(docs / "single.md"), "-c", "tmp", *data])
    assert last.stdout.endswith(
        f"  removed 1 document that is no longer at {docs / 'single.md'}\n"
        "  tmp holds no documents now: the collection was deleted\n"
    )
    assert json.loads(runner.invoke(app, ["collections", "--json", *data]).stdout) == []


def test_an_ingest_that_stores_nothing_says_no_collection_was_made(tmp_path: Path) -> None:
    """It printed a line of zeros, and the `rag search` after it said the collection does
    not exist."""
    data = ["--data-dir", str(tmp_path / "data")]
    (tmp_path / "empty").mkdir()
    said = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "-c", "e1", *data])
    as_json = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "-c", "e1", "--json", *data])

    assert said.exit_code == as_json.exit_code == 0, said.output
    assert said.stdout.endswith("  no document stored: collection e1 was not created\n")
    assert json.loads(as_json.stdout)["documents_in_collection"] == 0
    (tmp_path / "empty" / "a.md").write_text("Now there is one.\n")
    stored = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "-c", "e1", *data])
    assert "was not created" not in stored.stdout


def ingest_texts(folder: Path, texts: dict[str, str], collection: str, data: list[str]) -> None:
    for name, text in texts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    result = runner.invoke(app, ["ingest", str(folder), "-c", collection, *data])
    assert result.exit_code == 0, result.output


def stored_index_rows(data_dir: Path) -> tuple[int, int]:
    store = SqliteChunkStore(data_dir / "rag.sqlite")
    try:
        return index_rows(store)
    finally:
        store.close()


def test_delete_asks_then_removes_the_collection_and_its_index_rows(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    ingest_texts(tmp_path / "kb", {"a.md": "Alpha notes.\n", "b.md": "Beta notes.\n"}, "kb", data)
    ingest_texts(tmp_path / "keep", {"c.md": "Gamma notes.\n"}, "keep", data)

    unknown = runner.invoke(app, ["delete", "nope", *data])
    assert (unknown.exit_code, unknown.stderr) == (
        2,
        "Error: RAG collection 'nope' does not exist\n",
    )

    declined = runner.invoke(app, ["delete", "kb", *data], input="n\n")
    assert declined.exit_code == 1
    assert declined.stderr.startswith("Delete collection kb (2 documents, 2 chunks)? [y/N]")
    assert stored_index_rows(tmp_path / "data") == (3, 3)

    accepted = runner.invoke(app, ["delete", "kb", *data], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.endswith("deleted collection kb (2 documents)\n")
    listed = json.loads(runner.invoke(app, ["collections", "--json", *data]).stdout)
    assert [c["name"] for c in listed] == ["keep"]
    assert stored_index_rows(tmp_path / "data") == (1, 1)
    assert runner.invoke(app, ["delete", "kb", "--yes", *data]).exit_code == 2


def test_delete_with_paths_removes_those_documents_and_leaves_the_files(tmp_path: Path) -> None:
    docs, data = tmp_path / "docs", ["--data-dir", str(tmp_path / "data")]
    texts = {"a.md": "Alpha notes.\n", "sub/b.md": "Beta notes.\n", "sub/c.md": "Gamma.\n"}
    ingest_texts(docs, texts, "kb", data)

    nothing = runner.invoke(app, ["delete", "kb", str(docs / "nothing"), "--yes", *data])
    assert (nothing.exit_code, nothing.stderr) == (
        2,
        f"Error: no document of kb is at {docs / 'nothing'}\n",
    )

    some = runner.invoke(app, ["delete", "kb", str(docs / "sub"), "--yes", *data])
    assert some.exit_code == 0, some.output
    assert some.stdout == (
        f"kb: removed 2 documents (files on disk untouched)\n"
        f"  {docs / 'sub' / 'b.md'}\n  {docs / 'sub' / 'c.md'}\n"
    )
    assert (docs / "sub" / "b.md").is_file()
    listed = json.loads(runner.invoke(app, ["collections", "--json", *data]).stdout)
    assert listed == [{"name": "kb", "documents": 1, "chunks": 1}]
    assert stored_index_rows(tmp_path / "data") == (1, 1)

    last = runner.invoke(app, ["delete", "kb", str(docs / "a.md"), "--yes", "--json", *data])
    assert json.loads(last.stdout) == {
        "collection": "kb",
        "removed": [str(docs / "a.md")],
        "renamed": {},
        "collection_deleted": True,
    }
    assert json.loads(runner.invoke(app, ["collections", "--json", *data]).stdout) == []


@pytest.mark.parametrize("query", ["", "  \t", "???", "\u200b"])
def test_an_empty_query_is_refused_not_answered_with_arbitrary_chunks(
    tmp_path: Path, query: str
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    ingest_texts(tmp_path / "kb", {"a.md": "Alpha notes.\n"}, "kb", data)
    result = runner.invoke(app, ["search", query, "-c", "kb", *data])
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: query is empty: it has no letter or digit to search for\n",
    )


@pytest.mark.parametrize("data_dir", ["a-file", "/proc/nope"])
def test_a_data_dir_that_cannot_be_one_is_a_one_line_error(tmp_path: Path, data_dir: str) -> None:
    """Before: a traceback (FileExistsError, or an OSError from /proc)."""
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("Alpha notes.\n")
    where = str(tmp_path / data_dir)
    result = runner.invoke(app, ["ingest", str(tmp_path / "kb"), "-c", "kb", "--data-dir", where])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: cannot write {where}: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command", [["search", "q", "-c", "kb"], ["delete", "kb", "--yes"], ["reindex"]]
)
def test_commands_that_read_say_the_data_dir_is_empty_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    """Before, `search` in a folder that did not exist made it and an empty store there."""
    missing = tmp_path / "nothing-here"
    result = runner.invoke(app, [*command, "--data-dir", str(missing)])
    assert result.exit_code == 2
    assert f"the data dir {missing} holds no collections (nothing was ingested there)\n" in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1
    assert not missing.exists()


@pytest.mark.parametrize("command", [["collections"], ["search", "q", "-c", "kb"]])
def test_reading_commands_say_a_data_dir_that_is_a_file_is_one(
    tmp_path: Path, command: list[str]
) -> None:
    """`collections` printed nothing and exited 0; `search` said it held no collections."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    result = runner.invoke(app, [*command, "--data-dir", str(a_file)])
    assert result.exit_code == 2
    assert f"the data dir {a_file} is a file, not a directory" in result.stderr


def test_a_failed_file_is_named_once_and_an_empty_listing_says_so(tmp_path: Path) -> None:
    """ "failed: F: not a text file (binary content): F" named the file twice; `collections`
    in a data dir without any printed nothing at all."""
    data = ["--data-dir", str(tmp_path / "data")]
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "image.txt").write_bytes(bytes(range(256)) * 4)
    empty = runner.invoke(app, ["collections", *data])
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert (
        empty.stderr == f"no collections in {tmp_path / 'data'} (smallfirst rag ingest adds one)\n"
    )
    result = runner.invoke(app, ["ingest", str(tmp_path / "kb"), "-c", "kb", *data])
    assert result.exit_code == 0, result.output
    assert "1 failed, 0 ignored (0 chunks written)" in result.stdout
    assert (
        result.stderr
        == f"  failed: {tmp_path / 'kb' / 'image.txt'}: not a text file (binary content)\n"
    )


def test_ingest_names_the_files_it_removed(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    texts = {"a.md": "Alpha notes.\n", "b.md": "Beta notes.\n", "c.md": "Gamma notes.\n"}
    ingest_texts(tmp_path / "kb", texts, "kb", data)
    for name in ("a.md", "c.md"):
        (tmp_path / "kb" / name).unlink()
    gone = [str(tmp_path / "kb" / name) for name in ("a.md", "c.md")]
    as_json = runner.invoke(app, ["ingest", str(tmp_path / "kb"), "-c", "kb", "--json", *data])
    assert json.loads(as_json.stdout)["removed_files"] == gone
    (tmp_path / "kb" / "a.md").write_text("Alpha notes.\n")
    runner.invoke(app, ["ingest", str(tmp_path / "kb"), "-c", "kb", *data])
    (tmp_path / "kb" / "a.md").unlink()
    verbose = runner.invoke(app, ["ingest", str(tmp_path / "kb"), "-c", "kb", "-v", *data])
    assert f"  removed (1):\n    {gone[0]}\n" in verbose.stdout


@pytest.mark.parametrize(
    "name", ["", " pad ", "\t", "a/b", "../evil", "rag/x", "-x", ".x", "x" * 65, "naïve"]
)
def test_a_new_collection_needs_a_name_fit_for_a_model_id(tmp_path: Path, name: str) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    (tmp_path / "a.md").write_text("Alpha notes.\n")
    result = runner.invoke(app, ["ingest", str(tmp_path / "a.md"), "-c", name, *data])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: invalid collection name ")
    assert result.stderr.endswith(
        ": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit\n"
    )
    assert not (tmp_path / "data").exists()


def test_a_collection_named_before_names_were_checked_still_works(tmp_path: Path) -> None:
    import numpy as np

    data = ["--data-dir", str(tmp_path / "data")]
    store = open_store(tmp_path / "data")
    no_chunks = np.zeros((0, 384), dtype=np.float32)
    store.put_document(
        " odd/name ", "/old.md", title="", content_hash="x", chunks=[], embeddings=no_chunks
    )
    store.close()
    (tmp_path / "a.md").write_text("Alpha notes.\n")
    updated = runner.invoke(app, ["ingest", str(tmp_path / "a.md"), "-c", " odd/name ", *data])
    assert updated.exit_code == 0, updated.output
    found = runner.invoke(app, ["search", "alpha", "-c", " odd/name ", *data])
    assert found.exit_code == 0, found.output
    deleted = runner.invoke(app, ["delete", " odd/name ", "--yes", *data])
    assert deleted.exit_code == 0, deleted.output


def test_config_refuses_a_collection_name_that_could_not_be_ingested(tmp_path: Path) -> None:
    from smallfirst.config_file import load_settings
    from smallfirst.errors import ConfigError

    config = tmp_path / "smallfirst.yaml"
    config.write_text("rag:\n  collections:\n    a/b: {private: false}\n    ok-name: {}\n")
    with pytest.raises(ConfigError, match=r"invalid collection name 'a/b'"):
        load_settings(config, env={})


def test_searching_a_collection_without_text_says_so_as_the_server_does(tmp_path: Path) -> None:
    """It printed nothing and exited 0, while `rag/x2` was a 404 on the server."""
    data = ["--data-dir", str(tmp_path / "data")]
    ingest_texts(tmp_path / "kb", {"empty.txt": ""}, "x2", data)
    result = runner.invoke(app, ["search", "anything", "-c", "x2", *data])
    assert result.exit_code == 2
    assert "RAG collection 'x2' has no text to search" in result.stderr
