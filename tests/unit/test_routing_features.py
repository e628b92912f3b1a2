"""Feature spec v3 cues and the per-dataset training weights of the learned router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smallfirst.errors import ConfigError
from smallfirst.routing.data import RoutingRow
from smallfirst.routing.features import (
    CHEAP_FEATURE_NAMES,
    cheap_features,
    embed_texts,
    embedding_input,
)
from smallfirst.routing.learned import (
    CONFIG_FILE,
    LearnedConfig,
    LearnedRouter,
    dataset_weights,
    train_learned,
)

WORD_PROBLEM = (
    "Tom buys 3 boxes of 12 eggs for $4.50 each. He uses half of them, then gives 5 to a "
    "friend. How many eggs are left, and what was the total cost?"
)
WRITING = "Write a short poem about autumn leaves for a blog."
MCQ = "Which of the following is NOT a prime number?\nA. 2\nB. 3\nC. 9\nD. 11\nAnswer:"


def features(text: str) -> dict[str, float]:
    values = cheap_features([{"role": "user", "content": text}])
    assert len(values) == len(CHEAP_FEATURE_NAMES)
    return dict(zip(CHEAP_FEATURE_NAMES, values, strict=True))


def test_reasoning_load_cues_separate_a_word_problem_from_a_writing_task() -> None:
    problem, writing = features(WORD_PROBLEM), features(WRITING)
    for name in (
        "log_quantities",
        "log_arithmetic_words",
        "log_fraction_cues",
        "log_stem_sentences",
    ):
        assert problem[name] > writing[name], name
    assert writing["log_stem_writing_cues"] > problem["log_stem_writing_cues"]


def test_choice_cues_read_the_stem_and_the_options() -> None:
    mcq = features(MCQ)
    assert mcq["choice_meta_cue"] == 1.0
    assert mcq["log_stem_chars"] < features(MCQ.split("\n")[0] + " " * 40)["log_stem_chars"]
    assert mcq["log_choice_length_std"] > 0.0
    assert features(WRITING)["log_choice_length_std"] == 0.0


def test_dataset_weights_give_each_dataset_the_same_total() -> None:
    names = ["a"] * 90 + ["b"] * 9 + ["c"]
    weights = dataset_weights(names, LearnedConfig())
    assert weights.mean() == pytest.approx(1.0)
    totals = {n: sum(w for w, m in zip(weights, names, strict=True) if m == n) for n in "abc"}
    assert totals["a"] == pytest.approx(totals["b"]) == pytest.approx(totals["c"])
    assert set(dataset_weights(names, LearnedConfig(balance_datasets=False)).tolist()) == {1.0}
    assert set(dataset_weights(["a"] * 5, LearnedConfig()).tolist()) == {1.0}


def test_a_feature_spec_v2_artifact_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    rows = [
        RoutingRow(
            id=f"r{i}",
            messages=({"role": "user", "content": text},),
            dataset="d",
            weak_score=float(i % 2),
            strong_score=1.0,
        )
        for i, text in enumerate([WORD_PROBLEM, WRITING, MCQ, "hello", "2 + 2?", "a poem"] * 2)
    ]
    train_learned(rows, calibration_share=0.0).save(tmp_path)
    document = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    document["features"]["version"] = 2
    del document["model"]["balance_datasets"]  # v2 artifacts predate the field
    (tmp_path / CONFIG_FILE).write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="feature spec"):
        LearnedRouter.load(tmp_path)


def test_eval_over_several_datasets_reports_each_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from smallfirst.cli import app

    paths = []
    for dataset in ("alpha", "beta"):
        path = tmp_path / f"{dataset}.jsonl"
        with path.open("w") as handle:
            for i, text in enumerate([WORD_PROBLEM, WRITING, MCQ, "hello"] * 3):
                record = {
                    "id": f"{dataset}-{i}",
                    "dataset": dataset,
                    "messages": [{"role": "user", "content": f"{text} {i}"}],
                    "weak": {"model": "w", "score": float(i % 3 == 0)},
                    "strong": {"model": "s", "score": 1.0},
                }
                handle.write(json.dumps(record) + "\n")
        paths += ["--data", str(path)]
    result = CliRunner().invoke(app, ["router", "eval", *paths, "--router", "rules", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["per_dataset"]) == {"alpha", "beta"}
    assert report["per_dataset"]["alpha"]["n"] == 12


def test_a_system_prompt_is_not_part_of_the_ask() -> None:
    """No training row has a system prompt: "You are a helpful assistant." led every
    embedding and halved the strong share of a calibrated 30% budget on dev rows."""
    asked = [{"role": "user", "content": WORD_PROBLEM}]
    with_system = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "developer", "content": "Answer briefly."},
        *asked,
    ]
    assert embedding_input(with_system, 16) == embedding_input(asked, 16)
    assert (
        features(WORD_PROBLEM)["log_words"]
        == dict(zip(CHEAP_FEATURE_NAMES, cheap_features(with_system), strict=True))["log_words"]
    )


def test_a_run_stopped_while_saving_the_embeddings_cache_leaves_the_old_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was written in place: a stop while saving left a cut file, and the next run
    embedded every text again."""
    first = embed_texts(["first prompt"], cache_dir=tmp_path)
    saved = (tmp_path / "embeddings.npz").read_bytes()

    def stopped_while_saving(file: Path, **arrays: Any) -> None:
        Path(file).write_bytes(saved[: len(saved) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", stopped_while_saving)
    with pytest.raises(KeyboardInterrupt):
        embed_texts(["second prompt"], cache_dir=tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["embeddings.npz"]
    assert (tmp_path / "embeddings.npz").read_bytes() == saved
    monkeypatch.undo()

    def no_embedding() -> None:
        raise AssertionError("the cached text was embedded again")

    monkeypatch.setattr("smallfirst.embed.get_embedder", no_embedding)
    np.testing.assert_array_equal(embed_texts(["first prompt"], cache_dir=tmp_path), first)
