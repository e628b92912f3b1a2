"""`smallfirst router train | score | eval` through typer's CliRunner on a synthetic file."""

from __future__ import annotations

import json
from pathlib import Path

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
