"""`server.runner._GatewayServer`: answers under way at shutdown get a drain, a second
Ctrl-C (uvicorn's force quit) ends them at once, SIGHUP stops it as SIGTERM does;
`_HeadTimedProtocol`: a connection that sends no request head in time is closed, a head too
long is refused; `run_server` refuses an address it cannot listen on before the app starts."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from smallfirst.server.runner import STARTUP_FAILURE, _GatewayServer, _HeadTimedProtocol, run_server
from tests.helpers import fake_settings


class _Connection:
    """A connection still answering: uvicorn waits for it."""

    def shutdown(self) -> None:
        pass


class _Gateway:
    def __init__(self) -> None:
        self.ended = 0

    def end_answers(self) -> None:
        self.ended += 1


async def test_a_second_ctrl_c_ends_the_answers_at_once() -> None:
    """Forced, uvicorn stops waiting and skips its lifespan's end: answers left running kept
    the model's thread decoding, and the exit waited for it."""
    app = Starlette()
    app.state.gateway = gateway = _Gateway()
    server = _GatewayServer(uvicorn.Config(app), app)
    server.servers = []  # as `startup` leaves them, listening sockets aside
    server.server_state.connections.add(_Connection())  # type: ignore[arg-type]
    server.handle_exit(signal.SIGINT, None)
    shutdown = asyncio.ensure_future(server.shutdown())
    await asyncio.sleep(0.2)  # uvicorn's own pause before it waits for connections
    assert gateway.ended == 0  # draining
    server.handle_exit(signal.SIGINT, None)
    await shutdown
    assert server.force_exit
    assert gateway.ended == 1


async def _slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(0.5)  # longer than the head timeout below: a request under way stays
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), timeout=5) == b""


async def test_a_connection_that_sends_no_request_head_in_time_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn kept such connections open for good (slowloris): 500 of them, the open-file
    limit, and every other client's connection was closed at once."""
    monkeypatch.setattr("smallfirst.server.runner.HEAD_TIMEOUT_S", 0.2)
    async with _serving(_slow_app) as port:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await _heads_are_timed(connections)


async def _heads_are_timed(
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    (silent, _), (partial, partial_writer), (answered, answered_writer), kept = connections
    try:
        partial_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        answered_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        kept[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await _closed(silent)
        assert await _closed(partial)
        answer = await asyncio.wait_for(answered.read(), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        # kept alive after its answer, then the next head comes too slowly
        await asyncio.wait_for(kept[0].readuntil(b"0\r\n\r\n"), timeout=5)
        kept[1].write(b"GET / HTTP/1.1\r\n")
        assert await _closed(kept[0])
    finally:
        for _, writer in connections:
            writer.close()


@asynccontextmanager
async def _serving(app: ASGIApp) -> AsyncIterator[int]:
    """uvicorn with the gateway's protocol serving `app` on a free loopback port."""
    config = uvicorn.Config(app, http=_HeadTimedProtocol, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    listening = socket.create_server(("127.0.0.1", 0))
    serving = asyncio.ensure_future(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1]  # listening already: the kernel queues connections
    finally:
        server.should_exit = True
        await serving


def test_a_hangup_stops_the_server_as_sigterm_does() -> None:
    """A closed terminal's SIGHUP killed the process at once: the answers under way were cut
    without an end and were missing from the request log."""
    heard: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: heard.append(signum))
    try:
        app = Starlette()
        server = _GatewayServer(uvicorn.Config(app), app)
        with server.capture_signals():
            signal.raise_signal(signal.SIGHUP)
            assert server.should_exit  # the orderly stop begins
            assert heard == []
        assert heard == [signal.SIGHUP]  # raised again afterwards, as uvicorn does SIGTERM
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_hangup_ignored_by_nohup_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        app = Starlette()
        server = _GatewayServer(uvicorn.Config(app), app)
        with server.capture_signals():
            signal.raise_signal(signal.SIGHUP)
            assert not server.should_exit
    finally:
        signal.signal(signal.SIGHUP, previous)


def _listening_on(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, 0), family=family)
    except OSError as exc:  # no IPv6 here
        pytest.skip(f"cannot listen on {host}: {exc}")


@pytest.mark.parametrize(("host", "shown"), [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_a_port_in_use_is_refused_before_the_app_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str, shown: str
) -> None:
    """uvicorn binds after the app's startup: the default model was loaded (seconds, and
    its memory) before it said the port was taken."""
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append(True)
        yield

    with _listening_on(host) as taken:
        port = taken.getsockname()[1]
        settings = fake_settings(tmp_path, server={"host": host, "port": port})
        with pytest.raises(SystemExit) as exited:
            run_server(Starlette(lifespan=lifespan), settings, "critical")
    assert exited.value.code == STARTUP_FAILURE
    assert started == []
    assert capsys.readouterr().err == (
        f"Error: cannot listen on {shown}:{port}: the port is in use (another server?);"
        " choose another with --port\n"
    )


async def _answer_to_head_sent_in_pieces(port: int, header_lines: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
        for number in range(header_lines):  # a read each: the first is not counted
            writer.write(b"x-pad-%03d: %s\r\n" % (number, b"a" * 86))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"\r\n")
        return await asyncio.wait_for(reader.read(), timeout=5)
    except ConnectionError:  # refused while sending: the answer may be lost
        return b"reset"
    finally:
        writer.close()


async def _ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_request_head_longer_than_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn (httptools) kept a head of any size in memory: 200 MB of headers sent in
    under a second, no key needed, grew the server by 216 MB."""
    monkeypatch.setattr("smallfirst.server.runner.MAX_HEAD_BYTES", 2_000)
    async with _serving(_ok_app) as port:
        within = await _answer_to_head_sent_in_pieces(port, header_lines=15)  # 1,500 bytes
        beyond = await _answer_to_head_sent_in_pieces(port, header_lines=40)
    assert within.startswith(b"HTTP/1.1 200 OK")
    assert beyond == b"reset" or beyond.startswith(b"HTTP/1.1 431 ")
