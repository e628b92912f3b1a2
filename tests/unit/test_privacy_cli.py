"""`smallfirst privacy scan|eval` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli.privacy import app

runner = CliRunner()

SAMPLES = [
    {"full_text": "Email ann@example.com now", "spans": [
        {"entity_type": "EMAIL_ADDRESS", "entity_value": "ann@example.com", "start_position": 6,
         "end_position": 21}]},
    {"full_text": "Nothing here", "spans": []},
]  # fmt: skip


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(SAMPLES), encoding="utf-8")
    return path


def test_scan_json_has_findings_without_values() -> None:
    result = runner.invoke(app, ["scan", "Email ann@example.com now", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["findings"] == [
        {"entity_type": "EMAIL_ADDRESS", "start": 6, "end": 21, "score": 1.0}
    ]
    assert payload["counts"] == {"EMAIL_ADDRESS": 1}
    assert "ann@example.com" not in result.output


def test_eval_json_keys_and_predictions_file(tmp_path: Path) -> None:
    predictions = tmp_path / "pred.jsonl"
    result = runner.invoke(
        app, ["eval", "--data", str(_write(tmp_path)), "--json", "--predictions-out",
              str(predictions)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"samples", "headline", "token", "span_exact", "span_overlap", "latency_ms",
            "label_mapping", "not_evaluated", "matching"} <= set(report)  # fmt: skip
    assert report["headline"] == "token"
    assert report["token"]["per_type"]["EMAIL_ADDRESS"]["recall"] == 1.0
    assert {"p50", "p95"} <= set(report["latency_ms"])
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert lines == [
        {"index": 0, "spans": [{"entity_type": "EMAIL_ADDRESS", "start": 6, "end": 21}]},
        {"index": 1, "spans": []},
    ]


def test_eval_text_output_names_matching_and_mapping(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--data", str(_write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "token-level (headline)" in result.output
    assert "GPE->LOCATION" in result.output


def test_eval_bad_path_exits_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--data", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "no such file" in result.output


def test_eval_bad_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    result = runner.invoke(app, ["eval", "--data", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {path}: not JSON")


@pytest.mark.parametrize(
    ("samples", "problem"),
    [
        ([{"full_text": 5, "spans": []}], "sample 0: `full_text` must be a string, got 5"),
        ([{"full_text": None}], "sample 0: `full_text` must be a string, got None"),
        (["a", "b"], "sample 0: expected an object with `full_text`, got str"),
        (
            [SAMPLES[0], {"full_text": "Jo", "spans": [{"entity_type": "PERSON"}]}],
            "sample 1: span 0: `start_position` and `end_position` must be integers",
        ),
        ([], "no samples"),
    ],
)
def test_eval_names_the_file_and_sample_at_fault(
    tmp_path: Path, samples: list[object], problem: str
) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(samples), encoding="utf-8")
    result = runner.invoke(app, ["eval", "--data", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: {problem}")


def test_eval_refuses_an_unwritable_predictions_file_before_scoring(tmp_path: Path) -> None:
    data = str(_write(tmp_path))
    result = runner.invoke(app, ["eval", "--data", data, "--predictions-out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: cannot write {tmp_path}: it is a directory\n"
    assert result.stdout == ""  # no report: nothing was scored


def test_scan_reads_standard_input_that_is_not_utf8() -> None:
    result = runner.invoke(app, ["scan", "-"], input=b"caf\xe9 John Smith")
    assert result.exit_code == 0, result.output
    assert "caf\ufffd John Smith" not in result.stdout  # values are shown, not the whole text
    assert "John Smith" in result.stdout


def test_eval_an_unreadable_data_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the user may not read (chmod 000; tests run as root, where it reads) was a
    PermissionError traceback."""
    data = _write(tmp_path)
    read_bytes = Path.read_bytes

    def refused(path: Path) -> bytes:
        if path == data:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refused)
    result = runner.invoke(app, ["eval", "--data", str(data)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: cannot read {data}: Permission denied\n"


def test_eval_predictions_to_standard_output_are_refused_not_written_to_a_file_named_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "--data", str(_write(tmp_path)), "--predictions-out", "-"])
    assert result.exit_code == 2
    assert "--predictions-out: name a file" in result.stderr
    assert not (tmp_path / "-").exists()


def test_eval_stopped_while_writing_predictions_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were written in place: a Ctrl-C (or a full disk) meanwhile left half a file."""
    data = _write(tmp_path)
    predictions = tmp_path / "pred.jsonl"
    predictions.write_text("previous predictions\n")

    def stopped_halfway(path: Path, *args: object, **kwargs: object) -> None:
        path.write_bytes(b'{"index": 0, "sp')
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", stopped_halfway)
    runner.invoke(app, ["eval", "--data", str(data), "--predictions-out", str(predictions)])
    assert predictions.read_text() == "previous predictions\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.json", "pred.jsonl"]


def test_eval_refuses_to_write_predictions_over_its_data(tmp_path: Path) -> None:
    """The labelled samples were replaced by the predictions."""
    data = _write(tmp_path)
    result = runner.invoke(app, ["eval", "--data", str(data), "--predictions-out", str(data)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --predictions-out {data} is the --data file; give another file\n"
    )
    assert json.loads(data.read_text()) == SAMPLES
