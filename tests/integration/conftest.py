"""Real servers on loopback: the gateway with the bundled GGUF model, and second
OpenAI-compatible servers (other smallfirst processes) acting as remote tiers."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import openai
import pytest
from benchmarks.common import free_port, serve_process, stop, wait_until_ready

READY_TIMEOUT_S = 120
# `free_port` hands out a port nobody listens on yet; another process (or a client's
# ephemeral port) may take it before the server binds it: then it starts on a new one.
PORT_ATTEMPTS = 3


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


def start_server(
    config: dict[str, Any], directory: Path, port: int | None = None, log_level: str = "warning"
) -> Server:
    """A gateway with this config on loopback, its output in `directory/server.log`; on
    failure to start, the error carries that log."""
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        log = (directory / "server.log").open("wb")
        chosen = port or free_port()
        process = serve_process(config, directory, chosen, log_level, output=log)
        server = Server(chosen, process, directory / "data", log)
        try:
            wait_until_ready(process, server.url, READY_TIMEOUT_S)
            return server
        except RuntimeError as error:
            server.stop()
            output = (directory / "server.log").read_text()
            if port or attempt == PORT_ATTEMPTS or "the port is in use" not in output:
                raise RuntimeError(f"{error}\n{output}") from None
    raise AssertionError("unreachable")


def loaded_models(server: Server) -> dict[str, bool]:
    """Which of the server's local models have their weights loaded (`GET /v1/models`)."""
    models = httpx.get(f"{server.url}/v1/models").json()["data"]
    return {m["id"]: m["loaded"] for m in models if m.get("backend") == "llamacpp"}


def bundled_model_twins(
    tmp_path_factory: pytest.TempPathFactory, name: str, slots: dict[str, int], context: int
) -> Iterator[Server]:
    """One gateway serving the bundled model under two ids (edge, then on-prem), each with the
    given number of slots: for fixtures comparing the two side by side."""
    tiers = ("edge", "onprem")
    models = [
        {"id": model, "tier": tier, "context_length": context, "parallel": parallel}
        for (model, parallel), tier in zip(slots.items(), tiers, strict=True)
    ]
    server = start_server({"models": models}, tmp_path_factory.mktemp(name))
    yield server
    server.stop()


def fake_upstream_config(model: str, reply: str, delay: float = 0.0) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": model,
                "tier": "edge",
                "backend": "fake",
                "replies": [reply],
                "token_delay_s": delay,
            }
        ]
    }


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second OpenAI-compatible server: a smallfirst process with a fake model."""
    server = start_server(
        fake_upstream_config("upstream-model", "The cloud says hello to you.", delay=0.02),
        tmp_path_factory.mktemp("upstream"),
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slow_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        fake_upstream_config("slow-model", "one two three four five six seven", delay=1.0),
        tmp_path_factory.mktemp("slow-upstream"),
    )
    yield server
    server.stop()


def cloud_model(model_id: str, upstream: Server, remote: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "tier": "cloud",
        "backend": "openai_compat",
        "base_url": f"{upstream.url}/v1",
        "remote_model": remote,
        "backoff_s": 0.05,
        "input_cost_per_1m": 1.0,
        "output_cost_per_1m": 4.0,
        **extra,
    }


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server, slow_upstream: Server
) -> Iterator[Server]:
    """The gateway under test: the bundled model (edge) plus remote tiers on loopback."""
    config = {
        "models": [
            {"id": "smollm2-135m", "tier": "edge", "context_length": 2048, "queue_size": 8},
            cloud_model("cloud-model", upstream, "upstream-model"),
            cloud_model(
                "slow-cloud", slow_upstream, "slow-model", read_timeout_s=0.5, max_retries=0
            ),
        ]
    }
    server = start_server(config, tmp_path_factory.mktemp("gateway"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_tools_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The bundled model with local tool calls on (`tools: true`)."""
    config = {"models": [{"id": "smollm2-135m", "tier": "edge", "tools": True}]}
    server = start_server(config, tmp_path_factory.mktemp("local-tools"))
    yield server
    server.stop()


def metric_value(text: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def prompt_tokens_reused(server: Server, model: str, source: str) -> float:
    """`smallfirst_prompt_tokens_reused_total` for `model` and `source` (context | saved)."""
    metrics = httpx.get(f"{server.url}/metrics").text
    labels = f'model="{model}",source="{source}"'
    return metric_value(metrics, "smallfirst_prompt_tokens_reused_total", labels)


def busy_slots(server: Server, model: str) -> float:
    """How many of `model`'s slots hold a request now (`smallfirst_slots`, busy)."""
    metrics = httpx.get(f"{server.url}/metrics").text
    return metric_value(metrics, "smallfirst_slots", f'model="{model}",state="busy"')


def logged(server: Server, expression: str, request_id: str) -> Any:
    """`expression` (SQL over the `requests` columns) for one logged request, once its row is
    written: the log writer flushes every 0.2 s, so it is waited for a bounded while (a hang
    guard with `tests.helpers.eventually`'s bound, not a timing)."""
    for _ in range(300):
        with sqlite3.connect(server.data_dir / "requests.db") as connection:
            row = connection.execute(
                f"SELECT {expression} FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        if row is not None:
            return row[0]
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} was not logged")


_OPEN_CLIENTS: list[openai.OpenAI] = []


def openai_client(server: Server) -> openai.OpenAI:
    """The official client pointed at `server`; closed after the test."""
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    _OPEN_CLIENTS.append(api)
    return api


@pytest.fixture(autouse=True)
def _close_openai_clients() -> Iterator[None]:
    # an unclosed client socket is a ResourceWarning, which this suite treats as an error
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()
