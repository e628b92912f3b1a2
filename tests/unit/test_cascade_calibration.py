"""Cascade threshold from labelled rows: hand-computed cases, and the CLI around it."""

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.config import CascadeConfig
from smallfirst.routing.cascade import Confidence, calibrate_cascade


def row(mean: float, weak: float, strong: float) -> dict[str, object]:
    return {
        "id": f"r{mean}",
        "messages": [{"role": "user", "content": "q"}],
        "weak": {"model": "w", "score": weak},
        "strong": {"model": "s", "score": strong},
        "weak_confidence": {"mean_logprob": mean, "min_logprob": mean - 1, "tokens": 5},
    }


# Least sure first: the two least sure answers are the weak model's two mistakes.
ROWS = [row(-2.0, 0, 1), row(-1.5, 0, 1), row(-1.0, 1, 1), row(-0.5, 1, 1), row(-0.1, 1, 1)]


def kept(result_min: float, mean: float) -> bool:
    cascade = CascadeConfig(min_mean_logprob=max(result_min, -1e9))
    return Confidence(mean_logprob=mean, min_logprob=mean - 1, tokens=5).confident(cascade)


def test_a_quality_target_escalates_exactly_the_unsure_rows() -> None:
    result = calibrate_cascade(ROWS, min_quality=1.0)
    assert result.escalated_share == pytest.approx(0.4)
    assert result.pgr == pytest.approx(1.0)
    assert result.quality == pytest.approx(1.0)
    # The printed threshold, used by the cascade at serve time, makes the same decisions.
    assert [kept(result.min_mean_logprob, -2.0), kept(result.min_mean_logprob, -1.5)] == [
        False,
        False,
    ]
    assert all(kept(result.min_mean_logprob, m) for m in (-1.0, -0.5, -0.1))
    assert result.signal_apgr > 0.5  # confidence is informative on these rows


def test_a_share_cap_is_respected() -> None:
    result = calibrate_cascade(ROWS, max_strong_share=0.2)
    assert result.escalated_share == pytest.approx(0.2)
    assert result.pgr == pytest.approx(0.5)


def test_a_zero_share_never_escalates() -> None:
    result = calibrate_cascade(ROWS, max_strong_share=0.0)
    assert result.escalated_share == 0.0
    assert math.isinf(result.min_mean_logprob)


def test_rows_without_confidence_are_a_clear_error(tmp_path: Path) -> None:
    plain = [{k: v for k, v in r.items() if k != "weak_confidence"} for r in ROWS]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in plain))
    result = CliRunner().invoke(
        app, ["router", "calibrate-cascade", "--data", str(data), "--min-quality", "0.9"]
    )
    assert result.exit_code == 2
    assert "weak_confidence" in result.output


def test_cli_prints_the_config_line_and_json(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    base = ["router", "calibrate-cascade", "--data", str(data), "--min-quality", "1"]
    text = CliRunner().invoke(app, base)
    assert text.exit_code == 0, text.output
    assert "escalates 40.0%" in text.output
    assert "min_mean_logprob: -1.25" in text.output
    as_json = json.loads(CliRunner().invoke(app, [*base, "--json"]).output)
    assert as_json["escalated_share"] == pytest.approx(0.4)
    assert as_json["rows"] == 5
    missing = CliRunner().invoke(app, ["router", "calibrate-cascade", "--data", str(data)])
    assert missing.exit_code == 2


def test_rows_a_judge_did_not_rate_are_left_out() -> None:
    unrated = row(-3.0, 0, 1) | {"weak": {"model": "w", "score": None}}
    result = calibrate_cascade([*ROWS, unrated], min_quality=1.0)
    assert result.rows == len(ROWS)
    assert result.escalated_share == pytest.approx(0.4)


def test_a_strong_model_no_better_is_never_escalated_to_for_quality() -> None:
    # The same answers from both: every request went strong for a gain of nothing.
    same = [row(mean, weak, weak) for mean, weak in ((-2.0, 0), (-1.0, 1), (-0.5, 1))]
    result = calibrate_cascade(same, min_quality=0.9)
    assert result.escalated_share == 0.0
    assert math.isinf(result.min_mean_logprob)
    assert math.isnan(result.pgr)


@pytest.mark.parametrize(
    "field", ["weak_confidence", "weak", "strong"], ids=["confidence", "weak", "strong"]
)
def test_a_field_that_is_not_an_object_is_a_clear_error(tmp_path: Path, field: str) -> None:
    """`"weak_confidence": "high"` (a hand-edited row) stopped it with an AttributeError."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r | {field: "high"}) + "\n" for r in ROWS))
    result = CliRunner().invoke(
        app, ["router", "calibrate-cascade", "--data", str(data), "--max-strong-share", "0.3"]
    )
    assert result.exit_code == 2
    assert "no rows with `weak_confidence` and both scores" in result.output
