"""Evaluation metrics on a case small enough to count by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smallfirst.privacy.eval import Span, evaluate, f_beta, load_samples, token_labels

TEXT = "Ann Lee lives in Oslo"
#       tokens: Ann Lee lives in Oslo
SAMPLES_JSON = [
    {
        "full_text": TEXT,
        "spans": [
            {"entity_type": "PERSON", "entity_value": "Ann Lee", "start_position": 0,
             "end_position": 7},
            {"entity_type": "GPE", "entity_value": "Oslo", "start_position": 17,
             "end_position": 21},
        ],
    },
    {"full_text": "Acme rocks", "spans": [
        {"entity_type": "ORGANIZATION", "entity_value": "Acme", "start_position": 0,
         "end_position": 4}]},
]  # fmt: skip


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(SAMPLES_JSON), encoding="utf-8")
    return path


def test_token_labels_follow_spans() -> None:
    assert token_labels(TEXT, [Span("PERSON", 0, 7)]) == ["PERSON", "PERSON", "O", "O", "O"]


def test_hand_computed_counts(data_file: Path) -> None:
    # Sample 0: predicted PERSON "Ann" only and LOCATION "lives" (wrong), miss "Oslo".
    # Sample 1: predicted PERSON "Acme" (ORGANIZATION is not evaluated, so a false positive).
    predictions = {
        TEXT: [Span("PERSON", 0, 3), Span("LOCATION", 8, 13)],
        "Acme rocks": [Span("PERSON", 0, 4)],
    }
    report = evaluate(load_samples(data_file), lambda text: predictions[text]).as_dict()
    person = report["token"]["per_type"]["PERSON"]
    location = report["token"]["per_type"]["LOCATION"]
    # PERSON tokens: gold Ann, Lee; predicted Ann, Acme -> TP 1, FP 1, FN 1.
    assert (person["tp"], person["fp"], person["fn"]) == (1, 1, 1)
    # LOCATION tokens: gold Oslo (GPE mapped); predicted lives -> TP 0, FP 1, FN 1.
    assert (location["tp"], location["fp"], location["fn"]) == (0, 1, 1)
    micro = report["token"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 2, 2)
    assert micro["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert micro["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert micro["f2"] == pytest.approx(1 / 3, abs=1e-4)
    # Span level: exact has no match; overlap matches Ann~Ann Lee.
    assert report["span_exact"]["micro"]["tp"] == 0
    assert report["span_overlap"]["per_type"]["PERSON"]["tp"] == 1
    assert report["span_overlap"]["micro"]["fp"] == 2


def test_f_beta_weights_recall() -> None:
    assert f_beta(0.5, 1.0, 2.0) == pytest.approx(5 * 0.5 / (4 * 0.5 + 1))
    assert f_beta(0.0, 0.0, 2.0) == 0.0


def test_load_samples_rejects_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"full_text": "x"}), encoding="utf-8")
    with pytest.raises(ValueError, match="JSON list"):
        load_samples(path)


@pytest.mark.parametrize(
    ("sample", "problem"),
    [
        ({"full_text": "John", "spans": "PERSON"}, "sample 0: `spans` must be a list, got str"),
        (
            {"full_text": "John", "spans": [{"entity_type": "PERSON", "start_position": "x",
                                             "end_position": 1}]},
            "sample 0: span 0: `start_position` and `end_position` must be integers, got 'x' and 1",
        ),
        (  # JSON's true is no offset, though Python counts it as 1
            {"full_text": "John", "spans": [{"entity_type": "PERSON", "start_position": 0,
                                             "end_position": True}]},
            "sample 0: span 0: `start_position` and `end_position` must be integers, got 0 and"
            " True",
        ),
        (
            {"full_text": "John", "spans": [["PERSON", 0, 4]]},
            "sample 0: span 0 must be an object, got list",
        ),
        (
            {"full_text": "John", "spans": [{"start_position": 0, "end_position": 4}]},
            "sample 0: span 0: `entity_type` must be a string, got None",
        ),
    ],
)  # fmt: skip
def test_load_samples_names_the_sample_and_span_at_fault(
    tmp_path: Path, sample: dict[str, object], problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([sample]), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(problem)) as error:
        load_samples(path)
    assert str(error.value) == f"{path}: {problem}"


def test_load_samples_says_a_file_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xff[]")
    with pytest.raises(ValueError, match=r"bad\.json: not UTF-8 text \(byte 0\)"):
        load_samples(path)


def test_offsets_are_read_as_data_sets_write_them(tmp_path: Path) -> None:
    """A held-out set exported from a table may write 4.0 or "4": the evaluation must not
    stop on it (offsets were read with int() before, which took both)."""
    path = tmp_path / "set.json"
    spans = [{"entity_type": "PERSON", "start_position": 0.0, "end_position": "4"}]
    path.write_text(json.dumps([{"full_text": "John is here", "spans": spans}]))
    assert load_samples(path)[0].spans[0].end == 4


def test_a_file_saved_with_a_bom_is_read(tmp_path: Path) -> None:
    """As Windows tools save UTF-8: it was "not JSON (Unexpected UTF-8 BOM)"."""
    path = tmp_path / "set.json"
    spans = [{"entity_type": "PERSON", "start_position": 0, "end_position": 4}]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"full_text": "John", "spans": spans}]).encode())
    assert load_samples(path)[0].spans[0].end == 4


def test_gold_types_the_guard_does_not_target_are_named_as_not_evaluated(tmp_path: Path) -> None:
    """They counted as "O" without a word: the list named only the dev set's types."""
    path = tmp_path / "set.json"
    spans = [{"entity_type": "RELIGION", "start_position": 7, "end_position": 13}]
    path.write_text(json.dumps([{"full_text": "She is Hindu", "spans": spans}]))
    report = evaluate(load_samples(path), lambda text: []).as_dict()
    assert "RELIGION" in report["not_evaluated"]
    assert "ORGANIZATION" in report["not_evaluated"]
