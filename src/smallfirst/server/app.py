"""`create_app`: the Starlette application around one Gateway.

Plain Starlette rather than FastAPI: handlers parse and validate bodies themselves (pydantic's
JSON validator, OpenAI-shaped errors), so FastAPI's dependency and telemetry layers were pure
per-request cost (~0.16 ms per request in-process, of a 1 ms overhead budget)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smallfirst.config import Settings
from smallfirst.errors import ModelUnavailable, RequestTooLarge, SmallfirstError, served
from smallfirst.logs import RequestRecord
from smallfirst.server.auth import ApiKeyGate, KeyRing
from smallfirst.server.browser_guard import BrowserGuard
from smallfirst.server.embeddings_route import EMBEDDINGS_ROUTES
from smallfirst.server.errors import (
    handle_http_exception,
    handle_smallfirst_error,
    handle_unexpected,
)
from smallfirst.server.metrics import Metrics
from smallfirst.server.routes import ROUTES
from smallfirst.server.tokenizer_routes import TOKENIZER_ROUTES
from smallfirst.service import Gateway
from smallfirst.stored_responses import RESPONSES_FILE, ResponseStore

log = logging.getLogger("smallfirst.server")


def create_app(
    settings: Settings, gateway: Gateway | None = None, *, warm_up: bool = True
) -> Starlette:
    """Build the app. Without `gateway`, one is made from `settings` (request log included)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = gateway or Gateway.from_settings(settings)
        app.state.gateway = gw
        # With one tier for both (the built-in config), no answer is a strong one.
        weak, strong = gw.planner.weak.tier, gw.planner.strong.tier
        app.state.metrics = Metrics(gw.backends, gw.health, strong if strong != weak else None)
        gw.ledger.add_observer(app.state.metrics.observe)
        gw.ledger.add_observer(log_failure)
        task = asyncio.create_task(_warm_up(app, gw) if warm_up else _mark_ready(app))
        try:
            yield
        finally:
            task.cancel()
            await gw.aclose()
            if app.state.stored_responses is not None:
                app.state.stored_responses.close()

    keyring = KeyRing(settings.server)
    app = Starlette(
        routes=[*ROUTES, *EMBEDDINGS_ROUTES, *TOKENIZER_ROUTES],
        middleware=[
            # outermost: preflights carry no key
            Middleware(BrowserGuard, config=settings.server, check_host=not keyring.required),
            Middleware(BodySizeLimit, max_bytes=settings.server.max_body_bytes),
            Middleware(ApiKeyGate, keyring=keyring),
        ],
        exception_handlers={
            SmallfirstError: handle_smallfirst_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.started_at = time.time()
    app.state.ready = asyncio.Event()
    app.state.startup_problem = None
    app.state.stored_responses = _response_store(settings)
    return app


def _response_store(settings: Settings) -> ResponseStore | None:
    """The Responses API's stored responses (opened on first use), unless storing is off."""
    if not settings.server.store_responses:
        return None
    days = settings.server.stored_responses_days
    retention_s = days * 86400 if days is not None else None
    return ResponseStore(settings.resolved_data_dir / RESPONSES_FILE, retention_s)


def log_failure(record: RequestRecord) -> None:
    """One line per request the gateway failed (5xx) or turned away for lack of capacity
    (429), with its id: uvicorn's access line has neither the id nor the reason, so a client's
    `x-request-id` matched no line of the server's log."""
    if record.status < 500 and record.status != 429:
        return
    log.warning(
        "request %s (%s, model %s) failed with %d %s: %s",
        record.id,
        record.endpoint,
        record.model_requested,
        record.status,
        record.error_code or "-",
        record.route_reason or "-",
    )


async def _mark_ready(app: Starlette) -> None:
    app.state.ready.set()


async def _warm_up(app: Starlette, gw: Gateway) -> None:
    """Load the default local model, the PII detector and the router in the background, so
    the first request is fast."""
    backend = gw.backends[gw.default_model_id()]
    warm = getattr(backend, "warm_up", None)
    loading = "default model"
    try:
        if warm is not None:
            await warm()
        loading = "PII detector"  # its failure was told as the model's
        await gw.privacy.warm_up()
    except Exception as error:  # /readyz says why; a bug's trace goes to the log (`served`)
        app.state.startup_problem = served(error).message
        log.error("%s failed to load: %s", loading, app.state.startup_problem)
    try:
        await gw.routing.warm_up()
    except ModelUnavailable:  # logged why; `auto` requests get a 503, other models answer
        pass
    except Exception as error:
        log.error("router failed to load: %s", served(error).message)
    app.state.ready.set()
    await _preload_other_models(gw)


async def _preload_other_models(gw: Gateway) -> None:
    """Load the other local models too, in config order, so that the first request a router
    sends up does not wait seconds for weights (once the server is ready: requests for the
    default model need not wait for them)."""
    for model_id, backend in gw.backends.items():
        if model_id == gw.default_model_id():
            continue
        try:
            if not await backend.preload():
                log.info("%s loads on first use (preload off, or over the memory budget)", model_id)
        except Exception as error:  # its requests will say why
            log.error("%s failed to load: %s", model_id, served(error).message)


class BodySizeLimit:
    """413 before reading a body that is too large (by its declared length, or by counting its
    bytes): reading it raises `RequestTooLarge`, which the route logs and answers like any
    request it refuses (with `x-request-id`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        refused = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            if not refused:  # declared too large: not a byte of it is read
                message = await receive()
                seen += len(message.get("body", b""))
                if seen <= self.max_bytes:
                    return message
            raise RequestTooLarge(f"Request body exceeds {self.max_bytes} bytes.")

        await self.app(scope, counted, send)
