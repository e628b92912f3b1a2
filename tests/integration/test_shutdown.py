"""Stopping the server (Ctrl-C, SIGTERM, SIGHUP) while a local or remote model is answering: an
answer still under way after the drain (`runner.DRAIN_S`) ends with an error that says why,
it is logged, and the process exits cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, cloud_model, start_server

pytestmark = pytest.mark.integration
# A stream still under way when the signal comes and after the drain, however fast the
# machine: its end tokens (<|endoftext|>, <|im_end|>, <reponame>) are banned, so it goes on
# for all its 8,000 tokens (1,500, 10 s here, would end within the drain at 4x the speed).
LONG_STREAM = {
    "model": "smollm2-135m",
    "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
    "max_tokens": 8000,
    "temperature": 0,
    "logit_bias": {"0": -100, "2": -100, "4": -100},
    "stream": True,
}


@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_ctrl_c_ends_a_stream_under_way_with_an_error_event(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGTERM (`kill`, a container stopping) as Ctrl-C: uvicorn raised it again after its
    orderly stop, which killed the process (exit -15). SIGHUP (its terminal closed) as
    well: it killed the process at once, the stream cut without an end and not logged."""
    server = start_server({"models": [{"id": "smollm2-135m", "tier": "edge"}]}, tmp_path)
    lines: list[str] = []
    request_ids: list[str] = []

    def read() -> None:
        url = f"{server.url}/v1/completions"
        with httpx.stream("POST", url, json=LONG_STREAM, timeout=120) as response:
            request_ids.append(response.headers["x-request-id"])
            lines.extend(line for line in response.iter_lines() if line.startswith("data: "))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        _stop_once_under_way(server, lines, stop, pieces=3)
        reader.join(timeout=30)
    finally:
        server.stop()
    last = json.loads(lines[-1].removeprefix("data: "))
    assert "shutting down" in last["error"]["message"]
    row = sqlite3.connect(server.data_dir / "requests.db").execute(
        "SELECT status, model_answered FROM requests WHERE id = ?", (request_ids[0],)
    )
    assert row.fetchone() == (503, "smollm2-135m")  # it answered until then
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_an_answer_that_ends_within_the_drain_is_answered_whole(tmp_path: Path) -> None:
    """A short answer under way at SIGTERM (a rolling restart) ends as it would have: it was
    cut with the shutdown's 503 error event however close to its end it was."""
    server = start_server({"models": [{"id": "smollm2-135m", "tier": "edge"}]}, tmp_path)
    short = LONG_STREAM | {"max_tokens": 24}
    lines: list[str] = []
    request_ids: list[str] = []

    def read() -> None:
        with httpx.stream("POST", f"{server.url}/v1/completions", json=short, timeout=120) as r:
            request_ids.append(r.headers["x-request-id"])
            lines.extend(line for line in r.iter_lines() if line.startswith("data: "))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        _stop_once_under_way(server, lines, signal.SIGTERM)
        reader.join(timeout=30)
    finally:
        server.stop()
    assert lines[-1] == "data: [DONE]"
    row = sqlite3.connect(server.data_dir / "requests.db").execute(
        "SELECT status, completion_tokens FROM requests WHERE id = ?", (request_ids[0],)
    )
    assert row.fetchone() == (200, 24)


def test_ctrl_c_ends_remote_answers_under_way_with_the_same_error(
    tmp_path: Path, slow_upstream: Server
) -> None:
    """A stream from the cloud tier and a whole answer still waiting for it: they ran on for
    the 5 s grace and were then cut (a plain-text 500, a stream with no end, tracebacks in
    the log, rows logged as 499)."""
    cloud = cloud_model("cloud", slow_upstream, "slow-model", max_retries=0)
    server = start_server({"models": [{"id": "smollm2-135m", "tier": "edge"}, cloud]}, tmp_path)
    body = {"model": "cloud", "messages": [{"role": "user", "content": "Hi"}]}
    lines: list[str] = []
    whole: list[httpx.Response] = []

    def read() -> None:
        url = f"{server.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body | {"stream": True}, timeout=120) as response:
            lines.extend(line for line in response.iter_lines() if line.startswith("data: "))

    def ask() -> None:
        whole.append(httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120))

    readers = [threading.Thread(target=read), threading.Thread(target=ask)]
    for reader in readers:
        reader.start()
    try:
        _stop_once_under_way(server, lines, signal.SIGINT)
        for reader in readers:
            reader.join(timeout=30)
    finally:
        server.stop()
    assert "shutting down" in json.loads(lines[-1].removeprefix("data: "))["error"]["message"]
    assert whole[0].status_code == 503
    assert whole[0].json()["error"]["code"] == "server_shutting_down"
    rows = sqlite3.connect(server.data_dir / "requests.db").execute("SELECT status FROM requests")
    assert [status for (status,) in rows] == [503, 503]
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _stop_once_under_way(
    server: Server, lines: list[str], stop: signal.Signals, pieces: int = 1
) -> None:
    """Send `stop` once the answer's first `pieces` lines have come (at most ~60 s), and see
    the process exit cleanly."""
    for _ in range(600):
        if len(lines) >= pieces:
            break
        time.sleep(0.1)
    assert len(lines) >= pieces
    server.process.send_signal(stop)
    assert server.process.wait(timeout=120) == 0
