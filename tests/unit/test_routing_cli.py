"""`smallfirst router train | score | eval` through typer's CliRunner on a synthetic file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from tests.unit.test_routing_artifact import synthetic_rows

runner = CliRunner()


def write_rows(path: Path, dataset: str) -> Path:
    with path.open("w") as handle:
        for row in synthetic_rows():
            record = {
                "id": f"{dataset}-{row.id}",
                "dataset": dataset,
                "subject": row.subject,
                "messages": list(row.messages),
                "weak": {"model": "w", "score": row.weak_score},
                "strong": {"model": "s", "score": row.strong_score},
            }
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("routing") / "rows.jsonl", "synthetic")


@pytest.fixture(scope="module")
def other_data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("routing") / "other.jsonl", "other")


def test_train_score_and_eval_an_artifact(data_file: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    trained = runner.invoke(
        app, ["router", "train", "--data", str(data_file), "--out", str(artifact), "--json"]
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["rows"] == 60
    # for people: sentences, not a Python dict
    told = runner.invoke(app, ["router", "train", "--data", str(data_file), "--out", str(artifact)])
    assert told.exit_code == 0, told.output
    assert told.stdout == (
        f"wrote {artifact}: trained on 60 rows (synthetic 60, 2 subjects), 12 of them held aside"
        " for the calibration; mean score weak 0.500, strong 1.000\n"
    )

    # held-out rows may lack labels: score must not need them
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(
        json.dumps({"id": "q1", "messages": [{"role": "user", "content": "Say hi"}]})
        + "\n"
        + json.dumps({"id": "q2", "messages": [{"role": "user", "content": "Prove 2+2=4"}]})
        + "\n"
    )
    scores_file = tmp_path / "scores.jsonl"
    scored = runner.invoke(
        app,
        [
            "router",
            "score",
            "--router",
            str(artifact),
            "--data",
            str(unlabelled),
            "--out",
            str(scores_file),
        ],
    )
    assert scored.exit_code == 0, scored.output
    lines = [json.loads(line) for line in scores_file.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["q1", "q2"]
    assert all(isinstance(line["score"], float) for line in lines)

    evaluated = runner.invoke(
        app, ["router", "eval", "--data", str(data_file), "--router", str(artifact), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["mode"] == "artifact as is"


def test_score_keeps_each_id_as_the_file_has_it_and_reads_what_windows_writes(
    tmp_path: Path,
) -> None:
    """Ids were written as text ("7" for 7: a scorer joining on numbers matched nothing), a
    file starting with a BOM was "not JSON", and content as a list of parts was read as
    the list's Python spelling."""
    question = "Prove that the square root of 2 is irrational, step by step."
    parts = [{"type": "text", "text": question}]
    records = [
        {"id": 7, "messages": [{"role": "user", "content": question}]},
        {"id": "q-8", "messages": [{"role": "user", "content": parts}]},
        {"id": 9.5, "messages": [{"role": "user", "content": "Say hi"}]},
    ]
    data = tmp_path / "windows.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(map(json.dumps, records)).encode())
    out = tmp_path / "scores.jsonl"
    command = ["router", "score", "--router", "rules", "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    scores = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in scores] == [7, "q-8", 9.5]
    assert scores[0]["score"] == scores[1]["score"]


def test_eval_learned_out_of_fold_json_and_plot(data_file: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = runner.invoke(
        app,
        [
            "router",
            "eval",
            "--data",
            str(data_file),
            "--router",
            "learned",
            "--folds",
            "3",
            "--group-by",
            "none",
            "--plot",
            str(plot),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"apgr", "cpt50", "cpt80", "n", "random", "length"} <= set(report)
    assert report["n"] == 60
    assert report["mode"].startswith("out-of-fold")
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_eval_with_a_train_only_dataset_scores_only_the_other(
    data_file: Path, other_data_file: Path
) -> None:
    arguments = ["router", "eval", "--data", str(data_file), "--data", str(other_data_file)]
    arguments += ["--router", "learned", "--group-by", "subject", "--folds", "2", "--json"]
    result = runner.invoke(app, [*arguments, "--train-only", "other"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 60  # the 60 rows of "synthetic"; "other" is only trained on
    assert report["mode"].endswith("always training on other")
    assert "per_dataset" not in report
    # every fold's test rows are one unseen subject; trained on "other" too, the model still
    # ranks all hard rows first: the oracle's APGR when half the rows need the strong model
    assert report["apgr"] == pytest.approx(0.75)


def test_eval_rules_prints_a_table(data_file: Path) -> None:
    result = runner.invoke(app, ["router", "eval", "--data", str(data_file), "--router", "rules"])
    assert result.exit_code == 0, result.output
    assert "apgr" in result.stdout
    assert "random" in result.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ["router", "eval", "--data", "/no/such/file.jsonl", "--router", "rules"],
        ["router", "score", "--router", "rules", "--data", "/no/such.jsonl", "--out", "x.jsonl"],
        ["router", "eval", "--data", "{data}", "--router", "no-such-router"],
        ["router", "eval", "--data", "{data}", "--router", "rules", "--group-by", "planet"],
        ["router", "train", "--data", "{data}", "--router", "rules", "--out", "x"],
        # two subjects, each all-fail or all-pass: a fold cannot learn, said in one line
        [
            "router",
            "eval",
            "--data",
            "{data}",
            "--router",
            "learned",
            "--folds",
            "2",
            "--group-by",
            "subject",
        ],
        ["router", "eval", "--data", "{data}", "--router", "rules", "--train-only", "synthetic"],
        ["router", "eval", "--data", "{data}", "--router", "learned", "--train-only", "nope"],
        ["router", "eval", "--data", "{data}", "--router", "learned", "--train-only", "synthetic"],
    ],
)
def test_bad_usage_exits_2_with_one_line(arguments: list[str], data_file: Path) -> None:
    result = runner.invoke(app, [a.replace("{data}", str(data_file)) for a in arguments])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (
            ["train", "--calibration-share", "1", "--out", "x"],
            "--calibration-share must be in [0, 1)",
        ),
        (["eval", "--router", "rules", "--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_a_number_out_of_range_is_refused_naming_its_option(
    arguments: list[str], problem: str, data_file: Path
) -> None:
    result = runner.invoke(app, ["router", *arguments, "--data", str(data_file)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {problem}\n"


ROW = {"id": "r", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        pytest.param(b"[1, 2, 3]", "expected a JSON object, got list", id="list"),
        pytest.param(b"\xff\xfe garbage", "not UTF-8 text", id="binary"),
        pytest.param(b"{not json", "not JSON", id="malformed"),
        pytest.param(
            json.dumps({**ROW, "weak": {"score": "high"}}).encode(),
            "`weak.score` must be a number",
            id="score-text",
        ),
        pytest.param(
            json.dumps({**ROW, "weak": 5}).encode(),
            "`weak` must be an object with a `score`",
            id="side-number",
        ),
        pytest.param(
            json.dumps({**ROW, "strong": {"score": 7}}).encode(),
            "`strong.score` must be a number in [0, 1]",
            id="score-out-of-range",
        ),
        pytest.param(
            json.dumps({**ROW, "messages": ["hi"]}).encode(),
            "`messages.0`: Input should be a valid dictionary",
            id="message-text",
        ),
        # `router label` refuses these in the same words; they were read as "5", "" and "user"
        pytest.param(
            json.dumps({**ROW, "messages": [{"role": "user", "content": 5}]}).encode(),
            "`messages.0.content.str`: Input should be a valid string",
            id="content-number",
        ),
        pytest.param(
            json.dumps({**ROW, "messages": [{"role": "user"}]}).encode(),
            "`messages.0`: Value error, a message with role 'user' needs content",
            id="no-content",
        ),
        pytest.param(
            json.dumps({**ROW, "messages": [{"content": "hi"}]}).encode(),
            "`messages.0.role`: Field required",
            id="no-role",
        ),
        pytest.param(
            json.dumps({**ROW, "id": "first"}).encode(),
            "id 'first' is also on line 1",
            id="same-id",
        ),
    ],
)
@pytest.mark.parametrize("command", ["eval", "score"])
def test_a_bad_data_line_is_named_by_file_and_line(
    tmp_path: Path, command: str, bad_line: bytes, problem: str
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_bytes(json.dumps({**ROW, "id": "first"}).encode() + b"\n\n" + bad_line + b"\n")
    arguments = ["router", command, "--router", "length", "--data", str(data)]
    scores = tmp_path / "scores.jsonl"
    if command == "score":
        arguments += ["--out", str(scores)]
    result = runner.invoke(app, arguments)
    if command == "score" and problem.startswith(("`weak", "`strong")):
        # `router score` never reads labels: an odd label does not stop its row's scoring
        assert result.exit_code == 0, result.output
        assert len(scores.read_text().splitlines()) == 2
        return
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {data}:3: {problem}")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "score", "eval"])
def test_rows_given_twice_are_refused_naming_both_places(
    command: str, data_file: Path, tmp_path: Path
) -> None:
    """The same file twice, or a copy of its rows in another, counted each row twice in the
    training and in the metrics."""
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(data_file.read_bytes())
    arguments = {
        "train": ["--out", str(tmp_path / "artifact")],
        "score": ["--router", "length", "--out", str(tmp_path / "scores.jsonl")],
        "eval": ["--router", "length"],
    }[command]
    expected = {
        data_file: f"Error: {data_file}: the same file as {data_file}, given before (each of"
        " its rows would count twice)\n",
        copy: f"Error: {copy}:1: id 'synthetic-easy-0-0' is also on {data_file}:1\n",
    }
    for second, message in expected.items():
        data = ["--data", str(data_file), "--data", str(second)]
        result = runner.invoke(app, ["router", command, *data, *arguments])
        assert result.exit_code == 2, result.output
        assert result.stderr == message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["copy.jsonl"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["router", "eval", "--router", "bogus"],
            "unknown router 'bogus'; `router eval` takes random, length, rules, learned or an "
            "artifact directory",
        ),
        (
            ["router", "score", "--router", "bogus", "--out", "x.jsonl"],
            "unknown router 'bogus'; `router score` takes random, length, rules or an artifact",
        ),
        (
            ["router", "train", "--router", "bogus", "--out", "x"],
            "unknown router 'bogus'; `router train` trains `learned` only",
        ),
    ],
)
def test_an_unknown_router_lists_what_the_command_takes(
    data_file: Path, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, [*arguments, "--data", str(data_file)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {message}")


def _no_nan(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def test_metrics_without_a_quality_gap_are_null_and_the_text_says_why(tmp_path: Path) -> None:
    data = tmp_path / "same.jsonl"
    rows = [
        {**ROW, "id": f"r{i}", "weak": {"score": s}, "strong": {"score": s}}
        for i, s in enumerate([1.0, 0.0, 1.0])
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    arguments = ["router", "eval", "--router", "length", "--data", str(data)]
    as_json = runner.invoke(app, [*arguments, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout, parse_constant=_no_nan)
    assert (report["apgr"], report["cpt50"], report["cpt80"]) == (None, None, None)
    assert report["random"]["cpt50"] is None
    assert report["cost_saved_at_95"] == 1.0
    text = runner.invoke(app, arguments)
    assert "undef" in text.stdout
    assert "the weak and strong models have the same mean score (0.6667)" in text.stdout


def test_the_plot_path_written_is_the_one_reported(data_file: Path, tmp_path: Path) -> None:
    arguments = ["router", "eval", "--router", "length", "--data", str(data_file), "--json"]
    result = runner.invoke(app, [*arguments, "--plot", str(tmp_path / "plots" / "curve")])
    assert result.exit_code == 0, result.output
    written = tmp_path / "plots" / "curve.png"
    assert json.loads(result.stdout)["plot"] == str(written)
    assert written.read_bytes()[:4] == b"\x89PNG"
    svg = runner.invoke(app, [*arguments, "--plot", str(tmp_path / "curve.svg")])
    assert json.loads(svg.stdout)["plot"] == str(tmp_path / "curve.svg")


@pytest.mark.parametrize(
    ("command", "target", "message"),
    [
        (["router", "eval", "--router", "length", "--plot"], "{dir}", "it is a directory"),
        (["router", "eval", "--router", "length", "--plot"], "{dir}/c.xyz", "unknown image format"),
        (["router", "eval", "--router", "length", "--plot"], "{file}/c.png", "is not a directory"),
        (["router", "score", "--router", "length", "--out"], "{dir}", "it is a directory"),
        (["router", "train", "--out"], "{file}", "it is a file, not a directory"),
    ],
)
def test_an_unwritable_output_is_refused_before_reading_the_data(
    tmp_path: Path, command: list[str], target: str, message: str
) -> None:
    (tmp_path / "a_file").write_text("")
    out = target.format(dir=tmp_path, file=tmp_path / "a_file")
    missing_data = str(tmp_path / "no-such-rows.jsonl")  # would fail second
    result = runner.invoke(app, [*command, out, "--data", missing_data])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "no such data file" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["router", "train", "--out", "{out}"],
        ["router", "score", "--router", "length", "--out", "{out}"],
        ["router", "eval", "--router", "learned"],
    ],
    ids=["train", "score", "eval"],
)
def test_a_cache_dir_that_is_a_file_is_refused_before_any_work(
    data_file: Path, tmp_path: Path, command: list[str]
) -> None:
    """It was a FileExistsError traceback once every prompt had been embedded."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    out = str(tmp_path / "out")
    arguments = [part.format(out=out) for part in command]
    result = runner.invoke(app, [*arguments, "--data", str(data_file), "--cache-dir", str(cache)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: cannot write {cache}: it is a file, not a directory\n"
    assert cache.read_text() == "not a folder"


@pytest.mark.parametrize(
    "damage", [b"", b"junk", b"PK\x03\x04cut short"], ids=["empty", "junk", "cut"]
)
def test_an_unreadable_embeddings_cache_is_rebuilt(
    data_file: Path, tmp_path: Path, damage: bytes
) -> None:
    """A cache file cut short by a kill stopped every later run with numpy's traceback."""
    cache_file = tmp_path / "embeddings.npz"
    cache_file.write_bytes(damage)
    arguments = ["router", "eval", "--router", "learned", "--cache-dir", str(tmp_path)]
    result = runner.invoke(app, [*arguments, "--data", str(data_file), "--json"])
    assert result.exit_code == 0, result.output
    with np.load(cache_file) as stored:
        assert len(stored["keys"]) == len(stored["vectors"]) == 60


def test_calibrate_cascade_says_the_ranking_is_undefined_without_a_gap(tmp_path: Path) -> None:
    confidence = {"min_logprob": -3.0, "tokens": 5}
    rows = [
        {**ROW, "id": f"r{i}", "weak": {"score": s}, "strong": {"score": s},
         "weak_confidence": {**confidence, "mean_logprob": -i}}
        for i, s in enumerate([1.0, 0.0, 1.0])
    ]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = ["router", "calibrate-cascade", "--data", str(data), "--max-strong-share", "0.5"]
    text = runner.invoke(app, base)
    assert text.exit_code == 0, text.output
    assert "ranks rows at APGR undefined (the weak and strong mean scores are equal)" in text.stdout
    as_json = runner.invoke(app, [*base, "--json"])
    assert json.loads(as_json.stdout, parse_constant=_no_nan)["signal_apgr"] is None


def test_calibrate_cascade_names_the_line_that_is_not_json(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(ROW) + "\n{oops\n")
    result = runner.invoke(
        app, ["router", "calibrate-cascade", "--data", str(data), "--min-quality", "1"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {data}:2: not JSON")


def test_score_writes_to_standard_output_for_a_dash_and_says_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--out -` made a file named "-"; off a terminal the progress bar left an empty line
    on stderr before "wrote ...", which is all a script should see there."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": 1, "messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    command = ["router", "score", "--router", "length", "--data", str(data), "--out"]
    to_stdout = runner.invoke(app, [*command, "-"])
    assert to_stdout.exit_code == 0, to_stdout.output
    assert [json.loads(line)["id"] for line in to_stdout.stdout.splitlines()] == [1]
    assert to_stdout.stderr == ""
    assert not (tmp_path / "-").exists()
    to_file = runner.invoke(app, [*command, "scores.jsonl"])
    assert to_file.exit_code == 0, to_file.output
    assert to_file.stderr == "wrote 1 scores to scores.jsonl\n"


def test_score_refuses_to_write_over_its_data(tmp_path: Path) -> None:
    """The scores replaced the rows they were made from, exit 0."""
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": 1, "messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    before = data.read_bytes()
    command = ["router", "score", "--router", "length", "--data", str(data), "--out", str(data)]
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --out {data} is a --data file; give another file (it would be replaced)\n"
    )
    assert data.read_bytes() == before


def test_score_refuses_a_data_file_without_rows(tmp_path: Path) -> None:
    """An empty file wrote an empty score file and exited 0."""
    data, out = tmp_path / "rows.jsonl", tmp_path / "scores.jsonl"
    data.write_text("\n")
    command = ["router", "score", "--router", "length", "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {data}: no rows to score\n"
    assert not out.exists()


def _stopped_while_writing(path: Path) -> None:
    """What a Ctrl-C (or a full disk) halfway through writing `path` leaves."""
    Path(path).write_bytes(b"half")
    raise KeyboardInterrupt


def test_scores_stopped_while_written_leave_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = tmp_path / "rows.jsonl", tmp_path / "scores.jsonl"
    data.write_text(json.dumps({"id": 1, "messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    out.write_text("previous scores\n")
    monkeypatch.setattr(Path, "write_text", lambda path, *a, **k: _stopped_while_writing(path))
    command = ["router", "score", "--router", "length", "--data", str(data), "--out", str(out)]
    runner.invoke(app, command)
    assert out.read_text() == "previous scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "scores.jsonl"]


def test_a_plot_stopped_while_written_leaves_the_previous_file(
    data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plot = tmp_path / "curve.png"
    plot.write_bytes(b"previous plot")
    monkeypatch.setattr(
        "smallfirst.routing.eval.plot_curves",
        lambda curves, path, title: _stopped_while_writing(path),
    )
    command = ["router", "eval", "--router", "length", "--data", str(data_file)]
    runner.invoke(app, [*command, "--plot", str(plot)])
    assert plot.read_bytes() == b"previous plot"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_training_stopped_while_writing_over_an_artifact_leaves_it_whole(
    data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arrays were written in place: the old artifact was left cut short, unloadable."""
    artifact = tmp_path / "artifact"
    train = ["router", "train", "--data", str(data_file), "--out", str(artifact)]
    assert runner.invoke(app, train).exit_code == 0
    before = {path.name: path.read_bytes() for path in artifact.iterdir()}
    monkeypatch.setattr(np, "savez", lambda path, **arrays: _stopped_while_writing(path))
    runner.invoke(app, [*train, "--calibration-share", "0.5"])
    assert {path.name: path.read_bytes() for path in artifact.iterdir()} == before


@pytest.mark.parametrize("command", ["train", "eval"])
def test_rows_left_out_for_lack_of_labels_are_counted_and_the_first_named(
    command: str, data_file: Path, tmp_path: Path
) -> None:
    """They were left out of the training and the metrics without a word."""
    unlabelled = tmp_path / "more.jsonl"
    question = {"id": "u1", "messages": [{"role": "user", "content": "Hi"}]}
    unlabelled.write_text("\n" + json.dumps(question) + "\n" + json.dumps(question | {"id": "u2"}))
    arguments = ["--out", str(tmp_path / "a")] if command == "train" else ["--router", "length"]
    data = ["--data", str(data_file), "--data", str(unlabelled), "--json"]
    result = runner.invoke(app, ["router", command, *data, *arguments])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: left out 2 rows without both weak.score and strong.score"
        f" (the first: {unlabelled}:2)\n"
    )
    counted_rows = json.loads(result.stdout)["rows" if command == "train" else "n"]
    assert counted_rows == 60
