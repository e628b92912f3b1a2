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
    config = _fake_config(tmp_path, weak_reply="I think 7.", strong_reply="#### 12")
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


def _fake_config(tmp_path: Path, weak_reply: str = "7", strong_reply: str = "12") -> Path:
    """A config of two fake models: `tiny` (edge) and `big` (cloud), each with one reply."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\nmodels:\n"
        f"  - {{id: tiny, tier: edge, backend: fake, replies: ['{weak_reply}']}}\n"
        f"  - {{id: big, tier: cloud, backend: fake, replies: ['{strong_reply}']}}\n"
    )
    return config


GOOD = {"id": "q0", "messages": [{"role": "user", "content": "q"}], "reference": "#### 7"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param([b"{not json"], "{data}:2: not JSON", id="malformed"),
        pytest.param([b"\xff"], "{data}:2: not UTF-8 text", id="binary"),
        pytest.param([b"[1, 2]"], "{data}:2: expected a JSON object, got list", id="list"),
        pytest.param(
            [json.dumps({"messages": GOOD["messages"]}).encode()], "{data}:2: no `id`", id="no-id"
        ),
        pytest.param(
            [json.dumps({"id": "x"}).encode()],
            "{data}:2: `messages` must be a non-empty list",
            id="no-messages",
        ),
        pytest.param(
            [json.dumps({"id": "x", "messages": ["hi"]}).encode()],
            "{data}:2: `messages.0`: Input should be a valid dictionary",
            id="message-text",
        ),
        pytest.param(
            [json.dumps({"id": "x", "messages": GOOD["messages"]}).encode()],
            "{data}:2: no `reference`",
            id="no-reference",
        ),
    ],
)
def test_a_bad_prompt_row_is_named_before_any_model_runs(
    tmp_path: Path, lines: list[bytes], message: str
) -> None:
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_bytes(b"\n".join([json.dumps(GOOD).encode(), *lines]) + b"\n")
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    result = CliRunner().invoke(
        app, [*args, "--reference", "--out", str(out), "-c", str(_fake_config(tmp_path))]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(data=data))
    assert not out.exists()  # nothing was labelled


@pytest.mark.parametrize(
    ("data_text", "out_name", "message"),
    [
        pytest.param("", "out.jsonl", "{data}: no rows to label", id="empty-data"),
        pytest.param(json.dumps(GOOD), "folder", "cannot write {out}: it is a directory", id="dir"),
        pytest.param(
            json.dumps(GOOD),
            "a_file/out.jsonl",
            "cannot write {out}: {tmp}/a_file is not a",
            id="parent-file",
        ),
        pytest.param(
            json.dumps(GOOD), "not_labels.jsonl", "--out: {out}:1: `messages` must be", id="resume"
        ),
    ],
)
def test_label_refuses_empty_data_and_an_unusable_out_first(
    tmp_path: Path, data_text: str, out_name: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    (tmp_path / "not_labels.jsonl").write_text('{"id": "x"}\n')
    data, out = tmp_path / "in.jsonl", tmp_path / out_name
    data.write_text(data_text)
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    result = CliRunner().invoke(
        app, [*args, "--reference", "--out", str(out), "-c", str(_fake_config(tmp_path))]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(data=data, out=out, tmp=tmp_path))
    assert "labelled" not in result.stdout
