"""`smallfirst router label` with fake models: scoring, judge parsing, resuming."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.routing.label import parse_rating, score_against_reference


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("She makes $18 a day.", "9 * 2 = 18\n#### 18", 1.0),
        ("It is 1,250 in total", "#### 1250", 1.0),
        ("Maybe 17 or 19", "#### 18", 0.0),
        ("No number here", "#### 18", 0.0),
        ("The answer is (B) because", "B", 1.0),
        ("A is wrong, the answer is C", "C", 0.0),  # the first letter given is the answer
        ("It is the city of Paris.", "Paris", 1.0),
    ],
)
def test_reference_scoring(answer: str, reference: str, score: float) -> None:
    assert score_against_reference(answer, reference) == score


def test_judge_rating_parsing() -> None:
    assert parse_rating("8") == 0.8
    assert parse_rating("Rating: 10/10") == 1.0
    assert parse_rating("I cannot rate this") is None


def test_label_cli_writes_schema_rows_and_resumes(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\nmodels:\n"
        "  - {id: tiny, tier: edge, backend: fake, replies: ['I think 7.']}\n"
        "  - {id: big, tier: cloud, backend: fake, replies: ['#### 12']}\n"
    )
    rows = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"q {i}"}], "reference": ref}
        for i, ref in enumerate(["#### 12", "#### 7", "#### 3"])
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    out = tmp_path / "out.jsonl"
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    args += ["--reference", "--out", str(out), "--config", str(config)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = CliRunner().invoke(app, args)
    assert "labelled 1 new rows (2 already" in second.output
    # q0: only big right; q1: only tiny right (7); q2: neither (reference 3)
    assert (
        "3 rows: weak mean score 0.333, strong 0.333; the strong model did better on 1, "
        "worse on 1, the same on 1"
    ) in second.output
    labelled = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(labelled) == {"q0", "q1", "q2"}
    assert labelled["q0"]["weak"] == {"model": "tiny", "score": 0.0}
    assert labelled["q0"]["strong"] == {"model": "big", "score": 1.0}
    assert labelled["q1"]["weak"]["score"] == 1.0
    assert labelled["q1"]["weak_response"] == "I think 7."
    confidence = labelled["q1"]["weak_confidence"]  # the fake model's tokens: logprob -0.05
    assert confidence["tokens"] == 3
    assert confidence["mean_logprob"] == pytest.approx(-0.05)


def test_label_cli_usage_errors(tmp_path: Path) -> None:
    base = ["router", "label", "--data", str(tmp_path / "none.jsonl"), "--weak", "a"]
    both = CliRunner().invoke(
        app, [*base, "--strong", "b", "--out", "o", "--reference", "--judge", "j"]
    )
    assert both.exit_code == 2
    missing = CliRunner().invoke(app, [*base, "--strong", "b", "--out", "o", "--reference"])
    assert missing.exit_code == 2
