"""`smallfirst serve` and `smallfirst chat`: check the config, then answer.

Both check what would otherwise fail late (routing, privacy, the data dir, the request log,
model files) and exit with one line naming it. `serve` then runs the app (`server/`) under
uvicorn; `chat` drives a `Gateway` (`service.py`) in-process, with no server, and streams
its answers to the terminal.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from smallfirst.cli.common import (
    CONFIG_OPTION,
    INTERRUPTED,
    adapter_file_problems,
    argument_text,
    check_api_keys_or_exit,
    check_data_dir_or_exit,
    check_privacy_or_exit,
    check_request_log_or_exit,
    check_routing_or_exit,
    check_stored_responses_or_exit,
    config_warnings,
    fail,
    local_engine_problems,
    model_file_problems,
    refuse_model_file_problems,
    settings_or_exit,
    stdin_text,
    stops_as_interrupt,
    warn,
)
from smallfirst.config import AUTO_MODEL_ID, MAX_PORT

if TYPE_CHECKING:
    from smallfirst.completions import Chunk, FinishReason
    from smallfirst.service import Gateway
    from smallfirst.types import ChatMessage


# uvicorn's names (`uvicorn.config.LOG_LEVELS`); another name stopped it with a KeyError
UvicornLogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("chat")(chat)


def serve(
    config: Path | None = CONFIG_OPTION,
    host: str | None = typer.Option(
        None, help="Bind address (default: the config's server.host, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None,
        min=0,
        max=MAX_PORT,
        help="Port, 0 for any free one (default: the config's server.port, 8080).",
    ),
    log_level: UvicornLogLevel = typer.Option(
        "info", case_sensitive=False, help="Log level of uvicorn and of the gateway."
    ),
) -> None:
    """Start the OpenAI-compatible gateway."""
    from smallfirst.server import create_app
    from smallfirst.server.runner import run_server

    if host is not None and not host.strip():  # uvicorn bound every address for it
        fail("--host is empty: give an address (0.0.0.0 for every IPv4 one)")
    settings = settings_or_exit(config)
    if host is not None:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    check_routing_or_exit(settings)
    check_privacy_or_exit(settings)
    check_data_dir_or_exit(settings)
    check_request_log_or_exit(settings)
    check_stored_responses_or_exit(settings)
    refuse_model_file_problems(settings, adapter_file_problems(settings))
    check_api_keys_or_exit(settings)  # before the warnings, which read the keys too
    _show_gateway_log(log_level, settings.server.log_format)
    # requests to a model without its file fall back or fail; the others are served
    _warn_at_start(
        [
            *local_engine_problems(settings),
            *model_file_problems(settings),
            *config_warnings(settings),
        ],
        settings.server.log_format,
    )
    # uvicorn stops as gracefully on SIGTERM (and SIGHUP, `runner`) as on Ctrl-C, then raises
    # the signal again for the handler it found: by default that killed the process (exit
    # -15) after a clean stop
    with stops_as_interrupt((signal.SIGTERM, signal.SIGHUP)):
        run_server(create_app(settings), settings, log_level)


def _warn_at_start(problems: list[str], log_format: str) -> None:
    """`warning: ...` lines, or lines of the JSON log when it is JSON: a collector reading one
    JSON object a line could not parse the text lines ahead of the others."""
    if log_format != "json":
        warn(problems)
        return
    import logging

    for problem in problems:
        logging.getLogger("smallfirst.server").warning(problem)


def _show_gateway_log(level: str, log_format: str) -> None:
    """The gateway's own messages (a model loaded, with its slots and memory; the privacy
    detector ready) beside uvicorn's and in its format (`server.log_format`). Without a
    handler, Python printed only warnings and errors from them."""
    import logging

    from smallfirst.server.log_lines import gateway_formatter

    handler = logging.StreamHandler()
    handler.setFormatter(gateway_formatter(log_format))
    gateway_log = logging.getLogger("smallfirst")
    gateway_log.addHandler(handler)
    # uvicorn's "trace" is finer than any of logging's levels
    gateway_log.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.DEBUG))


def chat(
    prompt: str | None = typer.Argument(
        None,
        help="What to ask (text piped in comes before it). Without it: a conversation, one"
        " line per turn (/help lists its commands).",
    ),
    model: str = typer.Option("auto", "--model", "-m", help="Model id, or auto to route."),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    max_tokens: int | None = typer.Option(None, min=1, help="Limit the answer length."),
    rag: str | None = typer.Option(
        None, "--rag", help="Answer from this document collection (see smallfirst rag ingest)."
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Ask and stream the answer to the terminal (no server needed): once, or a conversation."""
    from smallfirst.errors import SmallfirstError
    from smallfirst.rag.store import CollectionNotFound
    from smallfirst.rag_step import rag_collection
    from smallfirst.service import Gateway
    from smallfirst.types import ChatMessage

    settings = settings_or_exit(config)
    asks_by_id = model != AUTO_MODEL_ID and rag_collection(model) is None
    if asks_by_id and settings.model(model) is None:
        fail(f"model {model!r} is not in the config; see `smallfirst models`")
    check_privacy_or_exit(settings)
    check_data_dir_or_exit(settings)
    check_request_log_or_exit(settings)
    question = None if prompt is None else _with_piped_text(argument_text(prompt))
    if question is not None and not question.strip():  # the model answered a blank anyway
        fail("the prompt is empty: give a question, or none for a conversation")
    opening = [ChatMessage(role="system", content=argument_text(system))] if system else []
    ask = _Asker(model=model, max_tokens=max_tokens, rag=rag)

    async def run() -> int:
        gateway = Gateway.from_settings(settings)
        try:
            if question is not None:
                await ask(gateway, [*opening, ChatMessage(role="user", content=question)])
                return 0
            return await _converse(gateway, ask, opening)
        finally:
            await gateway.aclose()

    try:
        failed_turns = asyncio.run(run())
    except CollectionNotFound as exc:  # a mistake in the command, as an unknown --model is
        fail(f"{exc.message}; see `smallfirst rag collections`")
    except SmallfirstError as exc:
        fail(exc.message, code=1)
    except KeyboardInterrupt:
        typer.echo("", err=True)  # the shell's prompt came on the line of the answer's "^C"
        raise typer.Exit(INTERRUPTED) from None
    if failed_turns:  # each said why as it failed; a script reading turns from a file learns it
        fail(f"{failed_turns} turn(s) of the conversation failed", code=1)


def _with_piped_text(prompt: str) -> str:
    """`cat notes.txt | smallfirst chat "Summarise this"`: text piped in comes before the
    question, as simonw/llm has it (it was dropped without a word)."""
    if sys.stdin is None or sys.stdin.isatty():
        return prompt
    piped = stdin_text()
    return "\n\n".join(part for part in (piped.rstrip(), prompt) if part.strip())


async def _read_line(marker: str, *, interactive: bool) -> str:
    """A line of the conversation, read in a daemon thread of its own: in the default
    executor, Ctrl-C at the prompt left `asyncio.run` waiting for that thread until Enter was
    pressed. At a terminal (stdin and stdout) `input()`; otherwise (a pipe, `| tee`) `input()`
    reads through the stdin buffer and holds its lock, and a daemon thread holding it at exit
    aborts Python ("could not acquire lock ... at interpreter shutdown"): the bytes are read
    from the file itself, which takes no lock."""
    raw = getattr(getattr(sys.stdin, "buffer", None), "raw", None)
    if interactive:
        read: Callable[[], str] = lambda: input(marker)  # noqa: E731
    elif raw is not None:
        read = lambda: _raw_line(raw, marker)  # noqa: E731
    else:  # no file under it (a test's stdin)
        return await asyncio.to_thread(input, marker)
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not line.done():
            outcome()

    def reading() -> None:
        try:
            text = read()
        except BaseException as exc:  # EOFError at the end of input, and the like
            error = exc
            with suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, lambda: line.set_exception(error))
            return
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, lambda: line.set_result(text))

    threading.Thread(target=reading, name="chat-input", daemon=True).start()
    return await line


def _raw_line(raw: Any, marker: str) -> str:
    """`input()` without the stdin buffer: the marker, then one line from the file."""
    if marker:
        sys.stdout.write(marker)
        sys.stdout.flush()
    line: bytes = raw.readline()
    if not line:
        raise EOFError
    return line.decode(sys.stdin.encoding or "utf-8", errors="replace").rstrip("\r\n")


@dataclass
class _Shown:
    """What of one answer is on the terminal: its text (stdout; an upstream's refusal is its
    text, which printed nothing), and its reasoning (stderr) until the text begins."""

    parts: list[str] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    _reasoning_line: bool = False  # reasoning shown, and its line not ended yet

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def show(self, chunk: Chunk) -> None:
        if chunk.reasoning:
            typer.echo(chunk.reasoning, nl=False, err=True)
            self._reasoning_line = True
        if text := chunk.text + chunk.refusal:
            self.end_reasoning()
            typer.echo(text, nl=False)
            self.parts.append(text)
        self.finish_reason = chunk.finish_reason or self.finish_reason

    def end_reasoning(self) -> None:
        if self._reasoning_line:
            typer.echo("", err=True)
            self._reasoning_line = False


@dataclass
class _Asker:
    model: str
    max_tokens: int | None
    rag: str | None

    async def __call__(
        self, gateway: Gateway, messages: list[ChatMessage], shown: _Shown | None = None
    ) -> str:
        """Stream one answer to stdout (sources and the answering model to stderr); `shown`
        holds what was shown so far, should the answer be stopped."""
        from smallfirst.answers import RequestContext
        from smallfirst.streams import close_stream
        from smallfirst.types import ChatRequest

        request = ChatRequest(
            model=self.model,
            messages=messages,
            max_tokens=self.max_tokens,
            stream=True,
            rag=self.rag,
        )
        answer = await gateway.stream(request, RequestContext(endpoint="cli"))
        shown = _Shown() if shown is None else shown
        try:
            async for chunk in answer.chunks:
                shown.show(chunk)
        finally:
            # closed now, so it is logged: a pipe closed under it (`| head`) left it to
            # asyncio's clean-up, after the request log had closed, and the row was lost
            await close_stream(answer.chunks)
        shown.end_reasoning()
        typer.echo("")
        if (cut := self._why_cut(shown.finish_reason)) is not None:
            typer.echo(cut, err=True)
        for cited in answer.citations or []:
            where = f"{cited['source']}:{cited['char_start']}-{cited['char_end']}"
            typer.echo(f"[{cited['id']}] {where}", err=True)
        typer.echo(f"[{answer.route.model.id} · {answer.route.model.tier}]", err=True)
        return shown.text

    def _why_cut(self, finish_reason: FinishReason | None) -> str | None:
        """An answer that did not end by itself looked like one that did."""
        if finish_reason == "content_filter":
            return "(the answer was stopped by the model's content filter)"
        if finish_reason != "length":
            return None
        if self.max_tokens is not None:
            return f"(the answer was cut at --max-tokens {self.max_tokens})"
        return "(the answer was cut at the model's token limit)"


_COMMANDS = {
    "/reset": "start the conversation over",
    "/exit": "end it (also /quit, or Ctrl-D)",
    "/help": "this list",
}
_HELP = "\n".join(
    [
        *(f"{command:<7} {what}" for command, what in _COMMANDS.items()),
        "Ctrl-C stops an answer; a line of one word that starts with / is a command,"
        " any other line is sent",
    ]
)


async def _converse(gateway: Gateway, ask: _Asker, opening: list[ChatMessage]) -> int:
    """Read turns from stdin until EOF or /exit; the conversation so far goes with each.
    Returns how many turns failed."""
    from smallfirst.errors import ContextLengthExceeded, ModelNotFound, SmallfirstError
    from smallfirst.types import ChatMessage

    failed = 0
    if sys.stdin is None:  # closed (`<&-`): no line will come, as at the end of input
        return failed
    marker = "> " if sys.stdin.isatty() else ""
    history = list(opening)
    while True:
        try:
            at_terminal = sys.stdin.isatty() and sys.stdout.isatty()
            line = (await _read_line(marker, interactive=at_terminal)).strip()
        except EOFError:  # Ctrl-D: the shell's prompt went on after "> "
            if marker:
                typer.echo("")
            return failed
        if line in ("/exit", "/quit"):
            return failed
        if line == "/reset":
            history = list(opening)
            typer.echo("(conversation cleared)", err=True)
            continue
        if _is_command(line):  # /help, or one not known (it went to the model)
            unknown = "" if line == "/help" else f"unknown command {line}; the commands:\n"
            typer.echo(unknown + _HELP, err=True)
            continue
        if not line:
            continue
        turn = ChatMessage(role="user", content=line)
        shown = _Shown()
        try:
            # at a terminal Ctrl-C stops the answer (the bundled model may ramble for
            # thousands of tokens), not the conversation; from a pipe it stops everything
            stopped = await _stoppable(
                ask(gateway, [*history, turn], shown), stoppable=bool(marker)
            )
        except ModelNotFound:  # every turn would fail alike: end here (exit 1)
            raise
        except SmallfirstError as exc:  # this turn failed; the conversation goes on
            failed += 1
            typer.echo(f"error: {exc.message}", err=True)
            if exc.code == ContextLengthExceeded.code and len(history) > len(opening):
                typer.echo("(the conversation no longer fits: /reset starts over)", err=True)
            continue
        if stopped:
            shown.end_reasoning()
            typer.echo("")
            if not shown.parts:
                typer.echo("(answer stopped)", err=True)
                continue
            typer.echo("(answer stopped; what it showed stays in the conversation)", err=True)
        history += [turn, ChatMessage(role="assistant", content=shown.text)]


def _is_command(line: str) -> bool:
    """`/word`: `/usr/bin is what?` and `/etc/hosts` are questions."""
    return re.fullmatch(r"/[^\s/]+", line) is not None


async def _stoppable(work: Awaitable[object], *, stoppable: bool) -> bool:
    """Run `work`; with `stoppable`, Ctrl-C (SIGINT) cancels it rather than the whole
    command. True if it was stopped so."""
    if not stoppable:
        await work
        return False
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    previous = signal.getsignal(signal.SIGINT)  # asyncio.run's: Ctrl-C at the prompt ends it
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():  # the command itself is stopping
            raise
        return True
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if previous is not None:  # None: a handler not set from Python, which stays
            signal.signal(signal.SIGINT, previous)
    return False
