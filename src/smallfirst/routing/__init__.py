"""Routing: score a request by how much it needs the strong model, and evaluate routers.

Serve-time API: `load_router(spec)`, `Router.score(messages)`, `Router.threshold(...)`,
`Router.decide(messages, ...)`; see `base.py`. Offline: `routing.eval`, `routing.crossval`.
"""

from __future__ import annotations

from smallfirst.routing.base import (
    ROUTER_CLASSES,
    RouteDecision,
    Router,
    load_router,
    router_class,
)
from smallfirst.routing.calibrate import Calibration, fit_calibration

__all__ = [
    "ROUTER_CLASSES",
    "Calibration",
    "RouteDecision",
    "Router",
    "fit_calibration",
    "load_router",
    "router_class",
]
