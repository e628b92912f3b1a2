"""Run the app under uvicorn, with an orderly shutdown for answers under way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from smallfirst.config import Settings
from smallfirst.server.log_lines import uvicorn_log_config

if TYPE_CHECKING:
    from smallfirst.service import Gateway

STARTUP_FAILURE = 3  # uvicorn's exit code when the server could not start (a port taken)
GRACE_S = 5  # how long shutdown waits for connections to finish before cancelling them
# Answers under way at shutdown may end within this; the rest then end with an error, in
# time for it to reach their clients within the grace period.
DRAIN_S = GRACE_S - 1
# How long a connection may take to send a request's head (request line and headers), from
# when it opens or its last answer ends: nginx's default `client_header_timeout`.
HEAD_TIMEOUT_S = 60.0


def run_server(app: Starlette, settings: Settings, log_level: str) -> None:
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=log_level,
        log_config=uvicorn_log_config(settings.server.log_format),
        timeout_graceful_shutdown=GRACE_S,
        http=_HeadTimedProtocol,
    )
    server = _GatewayServer(config, app)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # uvicorn has said why
        sys.exit(STARTUP_FAILURE)


class _GatewayServer(uvicorn.Server):
    """uvicorn's server, but at shutdown the answers still under way after DRAIN_S end with
    an error that says so (in a stream, an error event), and are logged; a second Ctrl-C ends
    them at once. Before, a long local answer ran on to its last token and held the shutdown
    up (179 s measured for 3,000 tokens)."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None

    def _gateway(self) -> Gateway | None:
        return getattr(self._app.state, "gateway", None)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        gateway = self._gateway()
        if gateway is None:
            await super().shutdown(sockets)
            return
        self._loop = asyncio.get_running_loop()
        ending = self._loop.call_later(DRAIN_S, gateway.end_answers)
        try:
            await super().shutdown(sockets)
        finally:
            ending.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        gateway = self._gateway()
        # forced, uvicorn waits for nothing, its lifespan's end included; answers left running
        # would hold the exit up (the model's thread decodes on)
        if self.force_exit and gateway is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(gateway.end_answers)


class _HeadTimedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, but a connection that does not send a request's head within
    HEAD_TIMEOUT_S is closed. uvicorn waited for one as long as the connection stayed open:
    connections that sent nothing, or a header line now and then (slowloris), were held for
    good, no key needed, and 500 of them (the process's open-file limit) left the server
    closing every other client's connection at once."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_headers_complete(self) -> None:
        self._head_came()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        next_head_due = not self.pipeline  # else the next request has sent its head already
        super().on_response_complete()
        if next_head_due and not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_came()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_came()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self.transport.close)

    def _head_came(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
