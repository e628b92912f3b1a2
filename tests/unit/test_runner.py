"""`server.runner._GatewayServer`: answers under way at shutdown get a drain, a second
Ctrl-C (uvicorn's force quit) ends them at once."""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from starlette.applications import Starlette

from smallfirst.server.runner import _GatewayServer


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
