"""The README names every metric `/metrics` exposes, as Prometheus spells it."""

from __future__ import annotations

from pathlib import Path

from smallfirst.config import CircuitBreakerConfig
from smallfirst.routing.health import ModelHealth
from smallfirst.server.metrics import Metrics

README = Path(__file__).resolve().parents[2] / "README.md"


def _exposed_names() -> set[str]:
    """Each metric family's name as a scrape shows it (a counter's with `_total`)."""
    metrics = Metrics({}, ModelHealth(CircuitBreakerConfig()), "cloud")
    return {
        family.name + "_total" if family.type == "counter" else family.name
        for family in metrics.registry.collect()
    }


def test_every_metric_is_named_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = sorted(name for name in _exposed_names() if f"`{name}" not in text)
    assert not missing, f"metrics not named in README.md: {', '.join(missing)}"
