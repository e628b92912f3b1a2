"""Run the app under uvicorn, with an orderly shutdown for answers under way."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from smallfirst.config import Settings
from smallfirst.errors import RequestHeadTooLarge
from smallfirst.server.errors import error_body
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
# The most a request's head (request line and headers) may take: nginx answers heads over
# 32 kB (4 buffers of 8 kB) with an error. httptools sets no bound at all.
MAX_HEAD_BYTES = 64 * 1024


def run_server(app: Starlette, settings: Settings, log_level: str) -> None:
    problem = listening_problem(settings.server.host, settings.server.port)
    if problem is not None:
        print(f"Error: {problem}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
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


def listening_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on `host`:`port`, found before the app starts: uvicorn
    binds after the app's startup, which loads the default model (seconds, and its memory),
    and only then said the port was taken. Each address the host names is tried as asyncio's
    `create_server` binds them."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot listen on {where}: the host name does not resolve ({exc.strerror})"
    for family, kind, protocol, _, address in addresses:
        try:
            probe = socket.socket(family, kind, protocol)
        except OSError:  # a family this machine lacks (IPv6 off): asyncio skips it too
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                named = "" if address[0] == host else f" ({address[0]})"
                return f"cannot listen on {where}{named}: {_bind_failure(exc)}"
    return None


def _bind_failure(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "the port is in use (another server?); choose another with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return "no network interface of this machine has that address"
    return str(error.strerror or error).lower()


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

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGHUP (its terminal closed) stops the server as SIGTERM does: it killed the
        process at once, its answers under way cut without an end and missing from the
        request log. Ignored (`nohup`), it stays ignored."""
        with super().capture_signals():
            ignored = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            if ignored or threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = signal.signal(signal.SIGHUP, self.handle_exit)
            try:
                yield
            finally:  # before uvicorn raises the signals it stopped for again, for these
                signal.signal(signal.SIGHUP, previous)

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
    closing every other client's connection at once. A head longer than MAX_HEAD_BYTES is
    answered 431 and the connection closed: uvicorn kept all of it in memory (200 MB of
    headers, sent in under a second with no key, grew the server by 216 MB)."""

    _head_timer: asyncio.TimerHandle | None = None
    _chunks_read = 0
    # The chunk in which the head being received began (None between heads) and the bytes
    # read since: that chunk is left uncounted, as it may end the previous request's body.
    _head_began_in: int | None = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        self._chunks_read += 1
        super().data_received(data)
        began_in = self._head_began_in
        if began_in is None or began_in == self._chunks_read or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began_in = self._chunks_read
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_came()
        self._head_began_in = None
        super().on_headers_complete()

    def _refuse_head(self) -> None:
        error = RequestHeadTooLarge(f"The request's headers exceed {MAX_HEAD_BYTES} bytes.")
        body = json.dumps(error_body(error)).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

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
