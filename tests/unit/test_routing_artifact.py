"""The learned router: trains on labelled rows, saves without pickle, reloads identically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smallfirst.errors import ConfigError
from smallfirst.routing.base import load_router
from smallfirst.routing.data import RoutingRow
from smallfirst.routing.learned import ARRAYS_FILE, CONFIG_FILE, LearnedRouter, train_learned

EASY = ["Say hello to {}.", "What colour is the sky, {}?", "Name a fruit {} likes."]
HARD = [
    "Compute 37 * 48 + 19^3, then divide by {} and explain each step of the derivation.",
    "Write a Python function that parses {} and returns a sorted list; prove it terminates.",
    "If {} has 3 boxes of 12 eggs and uses 17, how many remain after buying 2 more boxes?",
]
NAMES = ["Ada", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jin"]


def synthetic_rows() -> list[RoutingRow]:
    rows = []
    for index, name in enumerate(NAMES):
        for kind, templates, weak in (("easy", EASY, 1.0), ("hard", HARD, 0.0)):
            for number, template in enumerate(templates):
                rows.append(
                    RoutingRow(
                        id=f"{kind}-{index}-{number}",
                        messages=({"role": "user", "content": template.format(name)},),
                        dataset="synthetic",
                        subject=kind,
                        weak_score=weak,
                        strong_score=1.0,
                    )
                )
    return rows


@pytest.fixture(scope="module")
def trained() -> LearnedRouter:
    return train_learned(synthetic_rows(), calibration_share=0.25, seed=0)


def test_learned_router_separates_hard_from_easy(trained: LearnedRouter) -> None:
    easy = [{"role": "user", "content": "Say hello to Zoe."}]
    hard = [{"role": "user", "content": "Compute 91 * 17 - 3^4 and explain each step."}]
    assert trained.score(hard) > trained.score(easy)


def test_calibration_rows_are_held_aside(trained: LearnedRouter) -> None:
    summary = trained.training_summary
    assert summary["rows"] == 60
    assert summary["calibration_rows"] == 15
    assert trained.calibration is not None
    assert trained.calibration.n_rows == 15


def test_round_trip_gives_identical_scores(trained: LearnedRouter, tmp_path: Path) -> None:
    trained.save(tmp_path / "artifact")
    loaded = load_router(str(tmp_path / "artifact"))
    assert isinstance(loaded, LearnedRouter)
    conversations = [row.messages for row in synthetic_rows()]
    assert loaded.score_batch(conversations) == trained.score_batch(conversations)
    assert loaded.calibration == trained.calibration
    assert loaded.threshold(max_strong_share=0.5) == trained.threshold(max_strong_share=0.5)
    document = json.loads((tmp_path / "artifact" / CONFIG_FILE).read_text())
    assert document["features"]["cheap"]
    assert document["training"]["datasets"] == {"synthetic": 60}


def test_decide_uses_the_calibrated_threshold(trained: LearnedRouter) -> None:
    messages = [{"role": "user", "content": "Compute 91 * 17 - 3^4 and explain each step."}]
    everything = trained.decide(messages, max_strong_share=1.0)
    nothing = trained.decide(messages, max_strong_share=0.0)
    assert everything.strong
    assert not nothing.strong
    assert everything.score == nothing.score
    # a per-request knob wins over a configured static threshold
    assert trained.decide(messages, threshold=2.0, max_strong_share=1.0).strong
    assert not trained.decide(messages, threshold=2.0).strong


def test_artifact_with_another_format_is_refused(trained: LearnedRouter, tmp_path: Path) -> None:
    trained.save(tmp_path / "artifact")
    config_file = tmp_path / "artifact" / CONFIG_FILE
    document = json.loads(config_file.read_text())
    document["format"] = "something-else/9"
    config_file.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="unsupported format"):
        LearnedRouter.load(tmp_path / "artifact")
    assert (tmp_path / "artifact" / ARRAYS_FILE).exists()


def test_learned_without_artifact_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="artifact"):
        load_router("learned")
