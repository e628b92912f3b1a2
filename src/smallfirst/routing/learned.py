"""The learned router: logistic regression on a local prompt embedding plus cheap text cues.

Trained on several datasets at once, each dataset carries the same total weight.

Label: what sending the row to the strong model gains, `clip(strong.score - weak.score, 0, 1)`
(0/1 on GSM8K and MMLU: "only the strong model is right"; a rating gap on MT-Bench), fitted as
a soft probability with each row counted as a weighted positive and negative. It is the
quantity APGR rewards. Why this family and label: see docs/routing.md (grouped
cross-validated APGR).

Artifact (a directory, no pickle): `router.json` (format version, feature spec, model
hyper-parameters, training-data summary, calibration, the SHA-256 of the arrays file) and
`arrays.npz` (weights and feature scaling), loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from smallfirst.embed import DIMENSIONS
from smallfirst.errors import ConfigError, InvalidRequest
from smallfirst.paths import replaced_in_one_step
from smallfirst.routing.base import Messages, Router
from smallfirst.routing.calibrate import Calibration, fit_calibration
from smallfirst.routing.data import RoutingRow, labelled
from smallfirst.routing.features import (
    CHEAP_FEATURE_NAMES,
    EMBEDDING_MODEL,
    FEATURE_SPEC_VERSION,
    cheap_matrix,
    embed_texts,
    embedding_input,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

ARTIFACT_FORMAT = "smallfirst-router/1"
LABEL = "clip(strong.score - weak.score, 0, 1)"
CONFIG_FILE = "router.json"
ARRAYS_FILE = "arrays.npz"
ARRAYS_DIGEST = "arrays_sha256"  # key of router.json


@dataclass(frozen=True)
class LearnedConfig:
    """Hyper-parameters; chosen by grouped CV (docs/routing.md), not per dev set."""

    embed_words: int = 16  # encoder cost grows with length; CV APGR is flat from 16 to 24
    regularization_c: float = 0.1
    max_iter: int = 1000
    # each training dataset gets the same total weight, so 7.7k MMLU rows do not drown
    # 1.3k GSM8K and 160 MT-Bench rows (training only; scoring never sees the dataset)
    balance_datasets: bool = True


@dataclass(frozen=True)
class Features:
    embeddings: npt.NDArray[np.float32]
    cheap: npt.NDArray[np.float32]

    def subset(self, mask: Any) -> Features:
        return Features(self.embeddings[mask], self.cheap[mask])

    def __len__(self) -> int:
        return len(self.cheap)


@dataclass(frozen=True)
class Model:
    weights: FloatArray  # embedding dims + cheap features
    intercept: float
    cheap_mean: FloatArray
    cheap_scale: FloatArray
    # The cheap features' range in training; a prompt beyond it is scored at its edge. A
    # linear model extrapolates: 30 turns, or Chinese text (no spaces: one "word" per
    # sentence), scored ~0.0000 and went weak even with every call allowed strong. None in
    # artifacts written before 2026-12-07.
    cheap_min: FloatArray | None = None
    cheap_max: FloatArray | None = None


def featurize(
    conversations: Sequence[Messages],
    config: LearnedConfig,
    *,
    cache_dir: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Features:
    texts = [embedding_input(messages, config.embed_words) for messages in conversations]
    return Features(
        embeddings=embed_texts(texts, cache_dir=cache_dir, on_progress=on_progress),
        cheap=cheap_matrix(conversations),
    )


def _design(features: Features, model: Model) -> FloatArray:
    import numpy as np

    cheap = features.cheap
    if model.cheap_min is not None and model.cheap_max is not None:
        cheap = np.clip(cheap, model.cheap_min, model.cheap_max)
    scaled = (cheap - model.cheap_mean) / model.cheap_scale
    return np.hstack([features.embeddings, scaled]).astype(np.float64)


def dataset_weights(datasets: Sequence[str], config: LearnedConfig) -> FloatArray:
    """Row weights giving every dataset the same total (mean 1); all ones when disabled."""
    import numpy as np

    counts = Counter(datasets)
    if not config.balance_datasets or len(counts) < 2:
        return np.ones(len(datasets))
    share = len(datasets) / len(counts)
    return np.array([share / counts[name] for name in datasets], dtype=np.float64)


def fit_model(
    features: Features,
    weak: FloatArray,
    strong: FloatArray,
    config: LearnedConfig,
    sample_weight: FloatArray | None = None,
) -> Model:
    """Soft-label logistic regression on the strong model's gain, clipped to [0, 1].
    `sample_weight` scales each row (see `dataset_weights`)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    scaling = Model(
        weights=np.zeros(0),
        intercept=0.0,
        cheap_mean=features.cheap.mean(axis=0).astype(np.float64),
        cheap_scale=features.cheap.std(axis=0).astype(np.float64) + 1e-6,
        cheap_min=features.cheap.min(axis=0).astype(np.float64),
        cheap_max=features.cheap.max(axis=0).astype(np.float64),
    )
    design = _design(features, scaling)
    gain = np.clip(strong - weak, 0.0, 1.0)
    n = len(gain)
    stacked = np.vstack([design, design])
    labels = np.r_[np.ones(n), np.zeros(n)]
    row_weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight)
    weights = np.r_[gain * row_weight, (1.0 - gain) * row_weight]
    keep = weights > 0
    if len(set(labels[keep].tolist())) < 2:
        raise InvalidRequest(
            "training rows need some where the strong model scores higher and some where not"
        )
    classifier = LogisticRegression(C=config.regularization_c, max_iter=config.max_iter)
    classifier.fit(stacked[keep], labels[keep], sample_weight=weights[keep])
    return replace(
        scaling,
        weights=np.asarray(classifier.coef_[0], dtype=np.float64),
        intercept=float(classifier.intercept_[0]),
    )


def predict(model: Model, features: Features, config: LearnedConfig) -> FloatArray:
    """The strong model's expected gain for each row (0-1): a plain numpy dot product, no
    scikit-learn at serve time."""
    import numpy as np

    del config
    logits = _design(features, model) @ model.weights
    result: FloatArray = 1.0 / (1.0 + np.exp(-(logits + model.intercept)))
    return result


class LearnedRouter(Router):
    """Scores = the strong model's expected gain (0-1). Thread-safe: the model is read-only
    after load and the shared embedder serialises its tokenizer behind a lock."""

    name: ClassVar[str] = "learned"

    def __init__(
        self,
        model: Model,
        config: LearnedConfig,
        *,
        calibration: Calibration | None = None,
        training_summary: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self._calibration = calibration
        self.training_summary = training_summary or {}

    @property
    def calibration(self) -> Calibration | None:
        return self._calibration

    def score(self, messages: Messages) -> float:
        return self.score_batch([messages])[0]

    def score_batch(
        self,
        conversations: Sequence[Messages],
        *,
        cache_dir: str | Path | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[float]:
        if not conversations:
            return []
        features = featurize(
            conversations, self.config, cache_dir=cache_dir, on_progress=on_progress
        )
        return [float(x) for x in predict(self.model, features, self.config)]

    def save(self, path: str | Path) -> None:
        import numpy as np

        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "weights": self.model.weights,
            "intercept": np.array([self.model.intercept]),
            "cheap_mean": self.model.cheap_mean,
            "cheap_scale": self.model.cheap_scale,
            **_cheap_range(self.model),
        }
        # Each file replaces the old one in one step, `router.json` last: a run stopped
        # while writing over an artifact left its arrays cut short, and it no longer loaded.
        # One stopped between the two leaves new arrays beside the old `router.json`: the
        # digest it records tells them apart.
        with replaced_in_one_step(directory / ARRAYS_FILE) as aside:
            np.savez(aside, **arrays)
            arrays_digest = hashlib.sha256(aside.read_bytes()).hexdigest()
        document = {
            "format": ARTIFACT_FORMAT,
            ARRAYS_DIGEST: arrays_digest,
            "router": self.name,
            "features": _feature_spec(self.config),
            "model": {
                "family": "logistic_regression",
                "label": LABEL,
                **asdict(self.config),
            },
            "training": self.training_summary,
            "calibration": self._calibration.to_json() if self._calibration else None,
        }
        with replaced_in_one_step(directory / CONFIG_FILE) as aside:
            aside.write_text(json.dumps(document, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedRouter:
        """Load an artifact directory; refuses other formats and other feature specs, and a
        file it cannot read is named in the error (a parser's traceback stopped `serve`)."""
        directory = Path(path)
        config_file = directory / CONFIG_FILE
        if not config_file.is_file():
            raise ConfigError(f"{directory} is not a router artifact (no {CONFIG_FILE})")
        try:
            document = json.loads(config_file.read_text(encoding="utf-8"))
            if document.get("format") != ARTIFACT_FORMAT:
                raise ConfigError(f"{config_file}: unsupported format {document.get('format')!r}")
            config = LearnedConfig(
                embed_words=int(document["model"]["embed_words"]),
                regularization_c=float(document["model"]["regularization_c"]),
                max_iter=int(document["model"]["max_iter"]),
                balance_datasets=bool(document["model"].get("balance_datasets", False)),
            )
            table = document.get("calibration")
            calibration = Calibration.from_json(table) if table else None
            arrays_digest = document.get(ARRAYS_DIGEST)  # none before 2026-12-08: not checked
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
            raise _unreadable(config_file, exc) from None
        expected = _feature_spec(config)
        if document.get("features") != expected:
            differing = _differing(document.get("features"), expected)
            raise ConfigError(
                f"{config_file}: feature spec differs from this smallfirst version"
                f" ({differing}); train it again with `smallfirst router train`"
            )
        return cls(
            _read_model(directory / ARRAYS_FILE, arrays_digest),
            config,
            calibration=calibration,
            training_summary=document.get("training") or {},
        )


def _read_model(path: Path, digest: Any) -> Model:
    """The arrays at `path`; refused unless their SHA-256 is `digest` (when there is one)."""
    import zipfile

    import numpy as np

    try:
        content = path.read_bytes()  # once: the bytes checked are the bytes loaded
        if digest is not None and hashlib.sha256(content).hexdigest() != digest:
            raise ConfigError(
                f"{path}: not the arrays {CONFIG_FILE} was written with (their SHA-256 is"
                " not the one it records: damaged, or left by a run stopped between the two"
                " files); write the artifact again with `smallfirst router train`"
            )
        with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
            model = Model(
                weights=arrays["weights"].astype(np.float64),
                intercept=float(arrays["intercept"][0]),
                cheap_mean=arrays["cheap_mean"].astype(np.float64),
                cheap_scale=arrays["cheap_scale"].astype(np.float64),
                cheap_min=_optional(arrays, "cheap_min"),
                cheap_max=_optional(arrays, "cheap_max"),
            )
    except (OSError, ValueError, LookupError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc) from None
    cheap = (len(CHEAP_FEATURE_NAMES),)
    expected = {"weights": (DIMENSIONS + cheap[0],), "cheap_mean": cheap, "cheap_scale": cheap}
    arrays = {name: getattr(model, name) for name in expected} | _cheap_range(model)
    wrong = [
        f"{name} {value.shape}"
        for name, value in arrays.items()
        if value.shape != expected.get(name, cheap)
    ]
    if wrong:
        raise ConfigError(f"{path}: arrays of the wrong size for this feature spec: {wrong}")
    # NaN weights scored every prompt NaN, which no threshold reaches: all went weak, silently
    not_finite = [name for name, value in arrays.items() if not np.isfinite(value).all()]
    if not math.isfinite(model.intercept):
        not_finite.append("intercept")
    if not_finite:
        raise ConfigError(f"{path}: arrays with values that are not finite numbers: {not_finite}")
    return model


def _optional(arrays: Any, name: str) -> FloatArray | None:
    import numpy as np

    return arrays[name].astype(np.float64) if name in arrays else None


def _differing(found: Any, expected: dict[str, Any]) -> str:
    """Which parts of an artifact's feature spec differ: a retrained embedder
    (`embedding_model`) reads as plainly as a new feature version."""
    found = found if isinstance(found, dict) else {}
    return "; ".join(
        f"{key}: {str(found.get(key))[:60]!r} in the artifact, {str(expected.get(key))[:60]!r} here"
        for key in sorted(found.keys() | expected.keys())
        if found.get(key) != expected.get(key)
    )


def _unreadable(path: Path, error: Exception) -> ConfigError:
    return ConfigError(
        f"{path}: not a readable router artifact ({type(error).__name__}: {error});"
        " write it again with `smallfirst router train`"
    )


def _cheap_range(model: Model) -> dict[str, FloatArray]:
    if model.cheap_min is None or model.cheap_max is None:
        return {}
    return {"cheap_min": model.cheap_min, "cheap_max": model.cheap_max}


def _feature_spec(config: LearnedConfig) -> dict[str, Any]:
    return {
        "version": FEATURE_SPEC_VERSION,
        "embedding_model": EMBEDDING_MODEL,
        "embedding_input": f"user text, first {config.embed_words} words",
        "cheap": list(CHEAP_FEATURE_NAMES),
    }


def _summary(rows: Sequence[RoutingRow], held_aside: int) -> dict[str, Any]:
    n = len(rows)
    return {
        "rows": n,
        "calibration_rows": held_aside,
        "datasets": dict(Counter(row.dataset for row in rows)),
        "subjects": len({row.subject for row in rows if row.subject}),
        "weak_mean": sum(float(r.weak_score or 0.0) for r in rows) / n,
        "strong_mean": sum(float(r.strong_score or 0.0) for r in rows) / n,
    }


def train_learned(
    rows: Sequence[RoutingRow],
    *,
    config: LearnedConfig | None = None,
    calibration_share: float = 0.2,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LearnedRouter:
    """Fit on labelled rows; a random `calibration_share` of them (whole conversations) is
    held aside, never trained on, and used only to fit the calibration table."""
    import numpy as np

    config = config or LearnedConfig()
    rows = labelled(rows)
    conversations = sorted({row.conversation for row in rows})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(conversations)[: math.floor(len(conversations) * calibration_share)])
    is_calibration = np.array([row.conversation in held for row in rows])
    features = featurize(
        [r.messages for r in rows], config, cache_dir=cache_dir, on_progress=on_progress
    )
    weak = np.array([row.weak_score for row in rows], dtype=np.float64)
    strong = np.array([row.strong_score for row in rows], dtype=np.float64)
    train = ~is_calibration
    balance = dataset_weights([row.dataset for row in rows], config)
    model = fit_model(features.subset(train), weak[train], strong[train], config, balance[train])
    calibration = None
    if is_calibration.any():
        held_scores = predict(model, features.subset(is_calibration), config)
        calibration = fit_calibration(
            held_scores.tolist(), weak[is_calibration].tolist(), strong[is_calibration].tolist()
        )
    return LearnedRouter(
        model,
        config,
        calibration=calibration,
        training_summary=_summary(rows, int(is_calibration.sum())),
    )
