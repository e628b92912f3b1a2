"""The learned router: trains on labelled rows, saves without pickle, reloads identically."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smallfirst.errors import ConfigError
from smallfirst.routing.base import load_router
from smallfirst.routing.data import RoutingRow
from smallfirst.routing.learned import (
    ARRAYS_FILE,
    CONFIG_FILE,
    Features,
    LearnedRouter,
    featurize,
    predict,
    train_learned,
)

EASY = ["Say hello to {}.", "What colour is the sky, {}?", "Name a fruit {} likes."]
HARD = [
    "Compute 37 * 48 + 19^3, then divide by {} and explain each step of the derivation.",
    "Write a Python function that parses {} and returns a sorted list; prove it terminates.",
    "If {} has 3 boxes of 12 eggs and uses 17, how many remain after buying 2 more boxes?",
]
# The key in router.json, spelled out: artifacts on disk have it so.
DIGEST_KEY = "arrays_sha256"
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
    _edited_config(tmp_path / "artifact", lambda document: document.update(format="other/9"))
    with pytest.raises(ConfigError, match="unsupported format"):
        LearnedRouter.load(tmp_path / "artifact")
    assert (tmp_path / "artifact" / ARRAYS_FILE).exists()


def test_learned_without_artifact_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="artifact"):
        load_router("learned")


def _broken_json(artifact: Path) -> Path:
    (artifact / CONFIG_FILE).write_text('{"format": "smallfirst-router/1", ')
    return artifact / CONFIG_FILE


def _json_list(artifact: Path) -> Path:
    (artifact / CONFIG_FILE).write_text("[1, 2]")
    return artifact / CONFIG_FILE


def _edited_config(artifact: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """The artifact's `router.json` with `edit` made to its document."""
    config_file = artifact / CONFIG_FILE
    document = json.loads(config_file.read_text())
    edit(document)
    config_file.write_text(json.dumps(document))
    return config_file


def _no_model_section(artifact: Path) -> Path:
    return _edited_config(artifact, lambda document: document.pop("model"))


def _no_arrays(artifact: Path) -> Path:
    (artifact / ARRAYS_FILE).unlink()
    return artifact / ARRAYS_FILE


def _truncated_arrays(artifact: Path) -> Path:
    arrays = artifact / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[:100])
    return arrays


def _rewrite_arrays(artifact: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Arrays edited and their digest recorded, as a faulty writer would leave them: the
    checks of what they hold are reached."""
    arrays = artifact / ARRAYS_FILE
    with np.load(arrays) as stored:
        kept = dict(stored)
    edit(kept)
    np.savez(arrays, **kept)
    digest = hashlib.sha256(arrays.read_bytes()).hexdigest()
    _edited_config(artifact, lambda document: document.update({DIGEST_KEY: digest}))
    return arrays


def _short_weights(artifact: Path) -> Path:
    return _rewrite_arrays(artifact, lambda kept: kept.update(weights=kept["weights"][:10]))


def _nan_weight(artifact: Path) -> Path:
    return _rewrite_arrays(artifact, lambda kept: kept["weights"].__setitem__(0, np.nan))


def _edit_calibration(artifact: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    return _edited_config(artifact, lambda document: edit(document["calibration"]))


def _short_calibration_column(artifact: Path) -> Path:
    return _edit_calibration(artifact, lambda table: table["share"].pop())


def _nan_in_calibration(artifact: Path) -> Path:
    return _edit_calibration(artifact, lambda table: table["thresholds"].__setitem__(0, math.nan))


@pytest.mark.parametrize(
    "damage",
    [
        _broken_json,
        _json_list,
        _no_model_section,
        _no_arrays,
        _truncated_arrays,
        _short_weights,
        _nan_weight,
        _short_calibration_column,
        _nan_in_calibration,
    ],
)
def test_a_damaged_artifact_is_a_config_error_naming_the_file(
    damage: Callable[[Path], Path], trained: LearnedRouter, tmp_path: Path
) -> None:
    """`serve` and `config check` say which file is broken, not a parser's traceback (a
    weights array of the wrong size was only found by the first request to score; a NaN
    weight scored every prompt NaN and sent all of them weak)."""
    trained.save(tmp_path / "artifact")
    damaged = damage(tmp_path / "artifact")
    with pytest.raises(ConfigError, match=re.escape(str(damaged))):
        load_router(str(tmp_path / "artifact"))


def test_arrays_of_another_training_beside_the_old_json_are_refused(
    trained: LearnedRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training stopped after it replaced the arrays and before `router.json` left new
    weights beside the old calibration, and the artifact loaded silently wrong."""
    artifact = tmp_path / "artifact"
    trained.save(artifact)
    retrained = train_learned(synthetic_rows(), calibration_share=0.5, seed=1)

    def stopped(path: Path, *args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", stopped)
    with pytest.raises(KeyboardInterrupt):
        retrained.save(artifact)
    monkeypatch.undo()
    with pytest.raises(ConfigError) as refused:
        load_router(str(artifact))
    assert str(refused.value).startswith(
        f"{artifact / ARRAYS_FILE}: not the arrays {CONFIG_FILE} was written with"
    )


def test_an_artifact_written_before_the_digest_loads_as_it_did(
    trained: LearnedRouter, tmp_path: Path
) -> None:
    trained.save(tmp_path / "artifact")
    digests: list[str] = []
    _edited_config(tmp_path / "artifact", lambda document: digests.append(document.pop(DIGEST_KEY)))
    assert [len(digest) for digest in digests] == [64]
    loaded = LearnedRouter.load(tmp_path / "artifact")
    conversations = [row.messages for row in synthetic_rows()]
    assert loaded.score_batch(conversations) == trained.score_batch(conversations)


def test_cheap_features_beyond_the_training_range_score_at_its_edge(
    trained: LearnedRouter, tmp_path: Path
) -> None:
    """A linear model extrapolates: 30 turns, or Chinese text (no spaces, one long "word"),
    scored 0.0000 and went weak even with every call allowed strong."""
    messages = [{"role": "user", "content": "Compute 91 * 17 - 3^4 and explain each step."}]
    features = featurize([messages], trained.config)
    model = trained.model
    assert model.cheap_max is not None
    far_out = Features(features.embeddings, model.cheap_max[None, :] * 1000)
    at_edge = Features(features.embeddings, model.cheap_max[None, :])
    assert predict(model, far_out, trained.config) == predict(model, at_edge, trained.config)
    trained.save(tmp_path / "artifact")
    loaded = LearnedRouter.load(tmp_path / "artifact")
    assert np.array_equal(loaded.model.cheap_max, model.cheap_max)


def test_an_artifact_of_another_embedder_says_so_and_how_to_fix_it(
    trained: LearnedRouter, tmp_path: Path
) -> None:
    """It said only "feature spec differs from this smallfirst version"."""
    trained.save(tmp_path / "artifact")
    _edited_config(
        tmp_path / "artifact",
        lambda document: document["features"].update(embedding_model="another-encoder/v9"),
    )
    with pytest.raises(ConfigError) as refused:
        load_router(str(tmp_path / "artifact"))
    assert "embedding_model: 'another-encoder/v9' in the artifact" in str(refused.value)
    assert "smallfirst router train" in str(refused.value)
