"""Stopping the server (Ctrl-C) while a local model is answering: the answer ends at once
with an error that says why, it is logged, and the process exits cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_server

pytestmark = pytest.mark.integration
# Greedy counting goes on for all its tokens: a stream still under way when the signal comes.
LONG_STREAM = {
    "model": "smollm2-135m",
    "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
    "max_tokens": 1500,
    "temperature": 0,
    "stream": True,
}


def test_ctrl_c_ends_a_stream_under_way_with_an_error_event(tmp_path: Path) -> None:
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
        for _ in range(600):  # until a few tokens have arrived (at most ~60 s)
            if len(lines) >= 3:
                break
            time.sleep(0.1)
        assert len(lines) >= 3
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=120) == 0
        reader.join(timeout=30)
    finally:
        server.stop()
    last = json.loads(lines[-1].removeprefix("data: "))
    assert "shutting down" in last["error"]["message"]
    row = sqlite3.connect(server.data_dir / "requests.db").execute(
        "SELECT status FROM requests WHERE id = ?", (request_ids[0],)
    )
    assert row.fetchone() == (503,)
    assert "Traceback" not in (tmp_path / "server.log").read_text()
