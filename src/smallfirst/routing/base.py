"""The Router interface, its registry, and `load_router`.

Serve-time contract (stable):

- `load_router(spec) -> Router`: `spec` is a registered name (`random`, `length`, `rules`) or
  the path of a learned artifact directory written by `smallfirst router train`.
- `Router.score(messages) -> float`: higher means the request needs the strong model more.
  `messages` are OpenAI-style dicts with `role` and `content`. Thread-safe; for the learned
  router it runs the local embedding model (CPU-bound, run it in a worker thread).
- `Router.calibration`: a `Calibration` or None; `Router.threshold(max_strong_share=...,
  min_quality=...)` turns a per-request knob into a score threshold (see `calibrate.py`).
- `Router.decide(messages, ...) -> RouteDecision`: score, threshold and the verdict in one call.

Adding a router: one module with a `Router` subclass, plus one line in `ROUTER_CLASSES`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from smallfirst.errors import ConfigError
from smallfirst.routing.cascade import CASCADE_HAS_NO_QUALITY_TARGET

if TYPE_CHECKING:
    from smallfirst.config import RoutingConfig
    from smallfirst.routing.calibrate import Calibration

Messages = Sequence[Mapping[str, str]]

# name -> "module:Class"; imported on demand so `import smallfirst.routing` stays cheap.
ROUTER_CLASSES: dict[str, str] = {
    "random": "smallfirst.routing.baselines:RandomRouter",
    "length": "smallfirst.routing.baselines:LengthRouter",
    "rules": "smallfirst.routing.rules:RulesRouter",
}
LEARNED_NAME = "learned"
CASCADE_NAME = "cascade"


def names_a_router(spec: str) -> bool:
    """Whether `routing.router` names a router rather than a learned artifact's path."""
    return spec in ROUTER_CLASSES or spec in (CASCADE_NAME, LEARNED_NAME)


@dataclass(frozen=True)
class RouteDecision:
    """`strong` is True when the request should go to the strong (expensive) model."""

    strong: bool
    score: float
    threshold: float
    router: str
    basis: str = ""  # where the threshold came from, when not the router's own


class Router(ABC):
    """Scores a conversation by how much it needs the strong model."""

    name: ClassVar[str] = "router"
    # Threshold used by `decide` when no calibration and no explicit threshold is given.
    default_threshold: ClassVar[float] = 0.5

    @abstractmethod
    def score(self, messages: Messages) -> float:
        """Higher = needs the strong model more. Must not depend on anything but `messages`."""

    def score_batch(self, conversations: Sequence[Messages]) -> list[float]:
        """Scores for many conversations; learned routers override this to batch the encoder."""
        return [self.score(messages) for messages in conversations]

    @property
    def calibration(self) -> Calibration | None:
        return None

    def threshold(
        self, *, max_strong_share: float | None = None, min_quality: float | None = None
    ) -> float:
        """Score threshold for a per-request knob; needs a calibration unless both are None."""
        if max_strong_share is None and min_quality is None:
            return self.default_threshold
        if self.calibration is None:
            raise ConfigError(
                f"router {self.name!r} has no calibration; train a learned artifact or "
                "give an explicit threshold"
            )
        return self.calibration.threshold(
            max_strong_share=max_strong_share, min_quality=min_quality
        )

    def decide(
        self,
        messages: Messages,
        *,
        threshold: float | None = None,
        max_strong_share: float | None = None,
        min_quality: float | None = None,
    ) -> RouteDecision:
        """Score `messages` and compare with a threshold. Precedence: the knobs
        (`max_strong_share` / `min_quality`, via the calibration) when any is given, else the
        explicit `threshold`, else `default_threshold`."""
        if max_strong_share is not None or min_quality is not None or threshold is None:
            threshold = self.threshold(max_strong_share=max_strong_share, min_quality=min_quality)
        value = self.score(messages)
        return RouteDecision(
            strong=value >= threshold,
            score=value,
            threshold=threshold,
            router=self.name,
            basis=_calibrated_for(max_strong_share, min_quality),
        )


def _calibrated_for(max_strong_share: float | None, min_quality: float | None) -> str:
    """Where a knob's threshold came from, for the route reason (a learned router's said
    nothing of it, while the traffic's did; QA)."""
    targets = []
    if max_strong_share is not None:
        targets.append(f"a {max_strong_share:.0%} strong-call budget")
    if min_quality is not None:
        targets.append(f"{min_quality:.0%} of the weak->strong quality gap")
    if not targets:
        return ""
    both = " (the higher threshold of the two)" if len(targets) == 2 else ""
    return f"calibrated threshold for {' and '.join(targets)}{both}"


def router_class(name: str) -> type[Router]:
    try:
        target = ROUTER_CLASSES[name]
    except KeyError:
        known = ", ".join([*sorted(ROUTER_CLASSES), "<artifact path>"])
        raise ConfigError(f"unknown router {name!r}; expected one of: {known}") from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Router)):
        raise ConfigError(f"{target} is not a Router")
    return cls


def load_router(spec: str) -> Router:
    """A router from a registered name or a learned artifact path (see module docstring)."""
    if spec in ROUTER_CLASSES:
        return router_class(spec)()
    path = Path(spec)
    if path.exists():
        from smallfirst.extras import extra_problem
        from smallfirst.routing.learned import LearnedRouter

        missing = extra_problem("routing")
        if missing is not None:
            raise ConfigError(f"the learned router {spec}: {missing}")

        return LearnedRouter.load(path)
    if spec == LEARNED_NAME:
        raise ConfigError("`learned` needs an artifact: pass the path written by `router train`")
    known = ", ".join(sorted([*ROUTER_CLASSES, CASCADE_NAME]))  # what `routing.router` takes
    raise ConfigError(f"unknown router {spec!r}: not one of {known}, and no such artifact path")


class RoutingSettingsError(ConfigError):
    """A routing setting that cannot work, with the dotted keys of the settings it is about,
    so that a message can say where each was set (and no other)."""

    def __init__(self, problem: str, keys: tuple[str, ...]) -> None:
        super().__init__(problem)
        self.keys = keys


_ROUTER = "routing.router"
_MIN_QUALITY = "routing.min_quality"


def check_routing(config: RoutingConfig) -> None:
    """Fail at start rather than on every request: a router that cannot be loaded, or a
    quality target that only a calibrated (learned) router can turn into a threshold.
    Raises `RoutingSettingsError`."""
    if config.router == CASCADE_NAME:
        if config.min_quality is not None:
            raise RoutingSettingsError(CASCADE_HAS_NO_QUALITY_TARGET, (_MIN_QUALITY, _ROUTER))
        return
    try:
        router = load_router(config.router)
    except ConfigError as exc:
        raise RoutingSettingsError(str(exc), (_ROUTER,)) from exc
    if config.min_quality is not None and router.calibration is None:
        raise RoutingSettingsError(
            f"routing.min_quality needs a learned router artifact (it carries a calibration); "
            f"{config.router!r} has none: use routing.max_strong_share or routing.threshold",
            (_MIN_QUALITY, _ROUTER),
        )
