"""`smallfirst serve`, `smallfirst chat`, `smallfirst models`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from smallfirst.cli.common import (
    CONFIG_OPTION,
    check_routing_or_exit,
    fail,
    missing_model_files,
    settings_or_exit,
)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("chat")(chat)
    app.command("models")(models)


def serve(
    config: Path | None = CONFIG_OPTION,
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8080)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Start the OpenAI-compatible gateway."""
    import uvicorn

    from smallfirst.server import create_app
    from smallfirst.server.auth import KeyRing

    settings = settings_or_exit(config)
    if host is not None:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    check_routing_or_exit(settings)
    for problem in missing_model_files(settings):  # their requests will fall back or get 503
        typer.echo(f"warning: {problem}", err=True)
    keyring = KeyRing(settings.server)
    if keyring.required and not keyring.hashes:
        fail(
            f"binding {settings.server.host} (not loopback) needs API keys: set "
            f"{settings.server.api_keys_env}=key1,key2 or server.api_keys in the config"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )


def chat(
    prompt: str = typer.Argument(..., help="What to ask."),
    model: str = typer.Option("auto", "--model", "-m", help="Model id, or auto to route."),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    max_tokens: int | None = typer.Option(None, help="Limit the answer length."),
    rag: str | None = typer.Option(
        None, "--rag", help="Answer from this document collection (see smallfirst rag ingest)."
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Ask once and stream the answer to the terminal (no server needed)."""
    from smallfirst.errors import SmallfirstError
    from smallfirst.service import Gateway, RequestContext
    from smallfirst.types import ChatMessage, ChatRequest

    settings = settings_or_exit(config)
    messages = [ChatMessage(role="system", content=system)] if system else []
    messages.append(ChatMessage(role="user", content=prompt))
    request = ChatRequest(
        model=model, messages=messages, max_tokens=max_tokens, stream=True, rag=rag
    )

    async def run() -> None:
        gateway = Gateway.from_settings(settings)
        try:
            answer = await gateway.stream(request, RequestContext(endpoint="cli"))
            async for chunk in answer.chunks:
                typer.echo(chunk.text, nl=False)
            typer.echo("")
            for cited in answer.citations:
                where = f"{cited['source']}:{cited['char_start']}-{cited['char_end']}"
                typer.echo(f"[{cited['id']}] {where}", err=True)
            typer.echo(f"[{answer.route.model.id} · {answer.route.model.tier}]", err=True)
        finally:
            await gateway.aclose()

    try:
        asyncio.run(run())
    except SmallfirstError as exc:
        fail(exc.message, code=1)


def models(
    config: Path | None = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List configured models with tier, context length, prices and tool calling."""
    settings = settings_or_exit(config)
    rows = [
        {
            "id": m.id,
            "tier": m.tier,
            "backend": m.backend,
            "context_length": m.context_length,
            "input_cost_per_1m": m.input_cost_per_1m,
            "output_cost_per_1m": m.output_cost_per_1m,
            "tools": m.tools,
        }
        for m in settings.models
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "tier", "backend", "context", "$ in/1M", "$ out/1M", "tools")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["tier"]),
            str(r["backend"]),
            str(r["context_length"]),
            f"{r['input_cost_per_1m']:.2f}",
            f"{r['output_cost_per_1m']:.2f}",
            "yes" if r["tools"] else "no",
        )
    Console().print(table)
