"""Helpers shared by the CLI commands: loading settings, one-line usage errors, checking
that inputs can be read and outputs written before any long work starts."""

from __future__ import annotations

import io
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from smallfirst.config import LlamaCppModel, OpenAICompatModel, Settings
from smallfirst.config_file import load_settings
from smallfirst.errors import ConfigError
from smallfirst.gguf_header import CutShort, GgufHeader, NotGguf, adapter_mismatch, read_header
from smallfirst.paths import broken_link_in

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn

# Piped or redirected, tables would be cut to 80 columns (rich's default off a terminal).
UNLIMITED_WIDTH = 10_000

CONFIG_ENV = "SMALLFIRST_CONFIG"
CONFIG_OPTION = typer.Option(
    None, "--config", "-c", envvar=CONFIG_ENV, help="YAML config file (default: built-in)."
)
MB = 1024 * 1024


class _TrimmedStdout(io.StringIO):
    """Standard output with each line's trailing spaces cut: rich pads every cell of a table
    to its column's width, and the last column's padding would end every line."""

    def __init__(self) -> None:
        super().__init__()
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return sys.stdout.encoding or "utf-8"

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines and sys.stdout is not None:  # None: closed (`>&-`), as click's echo skips it
            sys.stdout.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if sys.stdout is None:
            return
        if self._partial:  # a print that ended without a newline: nothing more is coming
            sys.stdout.write(self._partial)
            self._partial = ""
        sys.stdout.flush()


def output_console() -> Console:
    """Where commands print: the terminal's width on a terminal; elsewhere whole lines, each
    as wide as its content (tables must not `expand` there: they would fill the width)."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(file=_TrimmedStdout(), width=UNLIMITED_WIDTH)


def counted(number: int, noun: str) -> str:
    """ "1 file", "2 files": a count for people to read."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def stdin_text() -> str:
    """Standard input as text: bytes that are not UTF-8 become U+FFFD, which prints."""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")


def argument_text(text: str) -> str:
    """An argument's bytes that were not UTF-8 arrive as lone surrogates, which can be
    neither printed nor tokenized: make them U+FFFD, as for standard input."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def settings_or_exit(path: Path | None) -> Settings:
    """The settings, or exit 2 with one `Error:` line per invalid setting, each naming the
    key and the file or environment variable that set it: the command was given a config
    it cannot read, as it may be given a flag it cannot read. (What a valid config asks of
    the machine, such as a model file that is not there, is checked later: exit 1.)"""
    try:
        return load_settings(path)
    except ConfigError as exc:
        *earlier, last = str(exc).splitlines()
        for problem in earlier:
            typer.echo(f"Error: {problem}", err=True)
        fail(last)
    except (OSError, UnicodeDecodeError) as exc:  # a directory, unreadable, or not text
        fail(read_error(path or Path("."), exc))


def read_error(path: Path, exc: OSError | UnicodeDecodeError) -> str:
    """One line saying why `path` could not be read."""
    if isinstance(exc, UnicodeDecodeError):
        return f"{path}: not UTF-8 text (byte {exc.start})"
    return f"cannot read {path}: {exc.strerror or exc}"


def require_file(path: Path, what: str = "file") -> None:
    """Exit 2 unless `path` is an existing file (not a directory)."""
    if path.is_dir():
        fail(f"{path} is a directory, not a {what}")
    if not path.is_file():
        fail(f"no such {what}: {path}")


def check_writable(path: Path, *, directory: bool = False) -> None:
    """Exit 2 now, before any long work, if `path` (a file; a folder with `directory`) could
    not be written later. Missing parent folders are fine: the commands create them."""
    problem = _write_problem(path, directory=directory)
    if problem is not None:
        fail(f"cannot write {path}: {problem}")


def _write_problem(path: Path, *, directory: bool) -> str | None:
    if (broken := broken_link_in(path)) is not None:
        return broken
    if path.is_dir() and not directory:
        return "it is a directory"
    if path.exists() and not path.is_dir() and directory:
        return "it is a file, not a directory"
    existing = path if path.exists() else _nearest_existing(path.parent)
    if existing != path and not existing.is_dir():
        return f"{existing} is not a directory"
    try:  # running as root, permission bits say nothing: try it
        if existing.is_dir():
            with tempfile.TemporaryFile(dir=existing):
                pass
        else:
            with existing.open("ab"):
                pass
    except OSError as exc:
        if existing == path and not directory:
            return f"cannot open it for writing ({exc.strerror or exc})"
        return f"cannot create files in {existing} ({exc.strerror or exc})"
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_routing_or_exit(settings: Settings) -> None:
    """The router loads and can meet the configured knobs, or exit 1 saying why."""
    from smallfirst.routing.base import RoutingSettingsError, check_routing

    try:
        check_routing(settings.routing)
    except RoutingSettingsError as exc:
        fail(f"{settings.origin(*exc.keys)}: routing: {exc}", code=1)


def require_extra_or_exit(extra: str) -> None:
    """Exit 1 naming what of smallfirst[`extra`] is not installed (it was a traceback)."""
    from smallfirst.extras import extra_problem

    problem = extra_problem(extra)
    if problem is not None:
        fail(problem, code=1)


def check_privacy_or_exit(settings: Settings) -> None:
    """Exit 1 if the PII detector or its spaCy pipeline is not installed (the server
    started, and every request it scanned failed with a 500), or its pseudonym key is
    damaged."""
    if not settings.privacy.enabled:
        return
    from smallfirst.extras import extra_problem
    from smallfirst.privacy.detect import spacy_model_problem

    missing = extra_problem("privacy")
    if missing is not None:
        where = settings.origin("privacy.enabled")
        fail(f"{where}: privacy.enabled: {missing}, or set privacy.enabled: false", code=1)
    problem = spacy_model_problem(settings.privacy.spacy_model)
    if problem is not None:
        fail(f"{settings.origin('privacy.spacy_model')}: privacy.spacy_model: {problem}", code=1)
    from smallfirst.privacy_step import pseudonym_key_problem

    if (problem := pseudonym_key_problem(settings.resolved_data_dir)) is not None:
        fail(problem, code=1)


def check_data_dir_or_exit(settings: Settings) -> None:
    """Exit 1 if the request log could not be written in `data_dir` (the server would stop
    at startup with a traceback)."""
    from smallfirst.logs.store import LOG_FILE

    path = settings.resolved_data_dir
    problem = _write_problem(path, directory=True)
    if problem is not None:
        fail(f"{settings.origin('data_dir')}: data_dir: cannot write {path}: {problem}", code=1)
    # SQLite opens a log it cannot write read-only: the server started, and each row failed
    for log_file in (path / name for name in (LOG_FILE, f"{LOG_FILE}-wal", f"{LOG_FILE}-shm")):
        problem = _write_problem(log_file, directory=False) if log_file.exists() else None
        if problem is not None:
            fail(f"cannot write the request log {log_file}: {problem}", code=1)


def check_request_log_or_exit(settings: Settings, *, existing_only: bool = False) -> None:
    """Exit 1 naming the request log if it does not open (the server would stop at startup
    with a traceback), or if a daily budget is set and today's spend cannot be read from it;
    an older log is migrated here. `existing_only`: a log not made yet is not made."""
    import sqlite3

    from smallfirst.logs.store import LOG_FILE, open_error, prepare

    path = settings.resolved_data_dir / LOG_FILE
    if existing_only and not path.exists():
        return
    try:
        prepare(path, read_spend=settings.routing.budget.limited)
    except sqlite3.DatabaseError as exc:
        fail(open_error(path, exc), code=1)


def check_stored_responses_or_exit(settings: Settings) -> None:
    """Exit 1 naming the stored responses' file if it cannot be used (answers would say
    `store: false`, and every chained request would be a 503)."""
    if not settings.server.store_responses:
        return
    from smallfirst.stored_responses import RESPONSES_FILE
    from smallfirst.stored_responses.store import open_problem

    problem = open_problem(settings.resolved_data_dir / RESPONSES_FILE)
    if problem is not None:
        fail(problem, code=1)


def check_api_keys_or_exit(settings: Settings) -> None:
    """Exit 1 if API keys are required (bound beyond loopback, or `require_api_key`) and
    none is set (every request would be refused), or a key in the environment is one no
    client can send. `serve` and `config check` ask it."""
    from smallfirst.server.auth import KeyRing

    server = settings.server
    try:
        keyring = KeyRing(server)
    except ValueError as error:  # a key in the environment that matches no client
        fail(str(error), code=1)
    if not keyring.required or keyring.hashes:
        return
    problem = (
        "server.require_api_key is true but no API key is set"
        if server.require_api_key
        else f"binding {server.host} (not loopback) needs API keys"
    )
    fail(
        f"{problem}: set {server.api_keys_env}=key1,key2 or server.api_keys in the config",
        code=1,
    )


def refuse_model_file_problems(settings: Settings, problems: list[str]) -> None:
    """Exit 1 naming the file and each problem, if there are any."""
    if problems:
        fail(f"{settings.origin('models')}: " + "; ".join(problems), code=1)


def warn(problems: list[str]) -> None:
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)


def model_file_problems(settings: Settings) -> list[str]:
    """Local models whose GGUF file is not there or not GGUF (their requests would fail)."""
    return [
        f"models.{index}.path ({model.id}): {found}"
        for index, model in _local_models(settings)
        if isinstance(found := _weights_file(model), str)
    ]


def local_engine_problems(settings: Settings) -> list[str]:
    """Local models when llama-cpp-python is not installed (their requests failed with a 500)."""
    from smallfirst.extras import extra_problem

    problem = extra_problem("local")
    if problem is None:
        return []
    return [f"models.{index} ({model.id}): {problem}" for index, model in _local_models(settings)]


def adapter_file_problems(settings: Settings) -> list[str]:
    """LoRA adapters that are not there or not GGUF (llama.cpp crashed the whole server on
    them), cut short, no adapter, or made for another architecture than their model's."""
    problems = []
    for index, model in _local_models(settings):
        problem = model.lora_path and _adapter_problem(model, Path(model.lora_path))
        if problem:
            problems.append(f"models.{index}.lora_path ({model.id}): {problem}")
    return problems


def _adapter_problem(model: LlamaCppModel, path: Path) -> str | None:
    adapter = _gguf(path, "LoRA adapter file")
    if not isinstance(adapter, GgufHeader):
        return adapter
    for key, wanted in (("general.type", "adapter"), ("adapter.type", "lora")):
        found = adapter.metadata.get(key)  # llama.cpp reads both, and loads only a LoRA
        if found != wanted:
            said = f"its {key} is {found}" if found else f"it has no {key}"
            return f"not a LoRA adapter ({said}; an adapter's is {wanted}): {path}"
    base = _model_header(model)
    if base is None:
        return None
    architectures = (adapter.architecture, base.architecture)
    if None not in architectures and architectures[0] != architectures[1]:
        return f"a LoRA adapter for {architectures[0]}, and the model is {architectures[1]}: {path}"
    mismatch = adapter_mismatch(adapter, base)
    return f"{mismatch}: {path}" if mismatch else None


def _model_header(model: LlamaCppModel) -> GgufHeader | None:
    weights = _weights_file(model)
    header = _gguf(weights, "model file") if isinstance(weights, Path) else None
    return header if isinstance(header, GgufHeader) else None


def config_warnings(settings: Settings) -> list[str]:
    """What is allowed but likely not meant: the server starts, and works worse."""
    return [
        *_contexts_over_training(settings),
        *_unset_key_variables(settings),
        *_api_keys_not_checked(settings),
        *_models_over_budget(settings),
        *_unusable_rag_store(settings),
        *_queue_sizes_of_remote_models(settings),
    ]


def _queue_sizes_of_remote_models(settings: Settings) -> list[str]:
    """`queue_size` bounds a local model's queue; on a remote model it was taken and did
    nothing."""
    return [
        f"models.{index}.queue_size ({model.id}): a remote model has no queue of this size; its"
        " calls wait up to queue_timeout_s for one of its max_concurrency connections"
        for index, model in enumerate(settings.models)
        if isinstance(model, OpenAICompatModel) and "queue_size" in model.model_fields_set
    ]


def _contexts_over_training(settings: Settings) -> list[str]:
    """A `context_length` above what the model was trained on: accepted, and the model's
    answers past it are poor (SmolLM2 at 65,536, trained on 8,192)."""
    warnings = []
    for index, model in _local_models(settings):
        header = _model_header(model)
        trained = header.trained_context if header else None
        if trained is not None and model.context_length > trained:
            warnings.append(
                f"models.{index}.context_length ({model.id}): {model.context_length:,} is more"
                f" than the {trained:,} tokens the model was trained on"
            )
    return warnings


def _api_keys_not_checked(settings: Settings) -> list[str]:
    """API keys set on a loopback server that does not require them: a request without a
    key, or with a wrong one, is answered (keys then only name who sent a request)."""
    from smallfirst.server.auth import KeyRing

    server = settings.server
    keyring = KeyRing(server)
    if keyring.required or not keyring.hashes or server.require_api_key is not None:
        return []
    return [
        f"server.api_keys / {server.api_keys_env}: keys are set but not checked on"
        f" {server.host} (loopback); a request without one, or with a wrong one, is answered."
        " Set server.require_api_key: true to require them (false: this warning goes)"
    ]


def _unusable_rag_store(settings: Settings) -> list[str]:
    """A RAG store that `rag/<collection>` requests cannot use (another version's, damaged):
    the server lists no collection then, and says so only in its log."""
    from smallfirst.rag import store_problem

    problem = store_problem(settings.resolved_data_dir)
    if problem is None:
        return []
    return [f"{problem}; until then no RAG collection is served"]


def _local_models(settings: Settings) -> list[tuple[int, LlamaCppModel]]:
    return [(i, m) for i, m in enumerate(settings.models) if isinstance(m, LlamaCppModel)]


def _weights_file(model: LlamaCppModel) -> Path | str:
    """The model's GGUF file, or why there is none."""
    from smallfirst.backends.llamacpp_engine import resolve_model_path
    from smallfirst.errors import ModelUnavailable

    try:
        path = resolve_model_path(model.path)
    except ModelUnavailable as exc:
        return exc.message
    found = _gguf(path, "model file")
    if isinstance(found, GgufHeader) and found.kind == "adapter":
        return f"a LoRA adapter, not a model (give it as lora_path beside its model): {path}"
    return found if isinstance(found, str) else path


def _gguf(path: Path, what: str) -> GgufHeader | str | None:
    """The file's header, or what is wrong with it; None for a GGUF file this reader does
    not know (a newer version): llama.cpp may."""
    if path.is_dir():  # it was "not found", for a folder that is there
        return f"{what} is a folder, not a GGUF file: {path}"
    if not path.is_file():
        return f"{what} not found: {path}"
    try:
        stat = path.stat()
        header = _header(path, stat.st_mtime_ns, stat.st_size)
    except NotGguf as exc:
        return str(exc)
    except CutShort as exc:
        return f"{what} is cut short, {exc}: {path}"
    except OSError as exc:
        return read_error(path, exc)
    except ValueError:
        return None
    if header.cut_short:
        return (
            f"{what} is cut short: its tensors end at byte {header.data_end:,}, the file has"
            f" {header.size:,}: {path}"
        )
    return header


@lru_cache(maxsize=32)
def _header(path: Path, mtime_ns: int, size: int) -> GgufHeader:
    """Read once per version of a file: `serve` checks models, adapters and contexts."""
    return read_header(path)


def _unset_key_variables(settings: Settings) -> list[str]:
    return [
        f"models.{index}.api_key_env ({model.id}): {model.api_key_env} is not set here; requests"
        " to this model go without an API key"
        for index, model in enumerate(settings.models)
        if isinstance(model, OpenAICompatModel)
        and model.api_key_env
        and not os.environ.get(model.api_key_env)
    ]


def _models_over_budget(settings: Settings) -> list[str]:
    """A model whose weights alone exceed the budget never preloads, and loading it unloads
    every other idle local model. One whose weights fit but not with its slots' key-value
    cells, which the budget counts too, was unloaded after every answer and loaded again for
    the next, with no word (Qwen2.5-Coder-1.5B under 1,200 MB: 1,066 + 224 MB; QA)."""
    budget_mb = settings.local.memory_budget_mb
    problems = []
    for index, model in _local_models(settings):
        found = _weights_file(model)
        if isinstance(found, str):
            continue  # `model_file_problems` says why
        size_mb = found.stat().st_size / MB
        header = _model_header(model)
        per_token = header.kv_bytes_per_token if header else None
        cells_mb = (per_token or 0) * model.context_length * model.parallel / MB
        if size_mb > budget_mb:
            problems.append(
                f"models.{index}.path ({model.id}): its weights file ({size_mb:,.0f} MB) is larger"
                f" than local.memory_budget_mb ({budget_mb:,} MB): it never preloads, and"
                " loading it unloads every other idle local model"
            )
        elif size_mb + cells_mb > budget_mb:
            problems.append(
                f"models.{index} ({model.id}): its weights ({size_mb:,.0f} MB) and the key-value"
                f" cells of {model.parallel} slot(s) of {model.context_length:,} tokens"
                f" ({cells_mb:,.0f} MB) are more than local.memory_budget_mb ({budget_mb:,} MB):"
                " it is unloaded after every answer and loaded again for the next; lower"
                " context_length or parallel, or raise the budget"
            )
    return problems


INTERRUPTED = 130  # a shell's exit code for a command stopped by Ctrl-C (128 + SIGINT)


@contextmanager
def stops_as_interrupt(
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP),
) -> Iterator[None]:
    """SIGTERM and SIGHUP (`kill`, a container stopping, a closed terminal) stop a long
    command as Ctrl-C does, so it cleans up and says what was kept: an ingest ended without
    a word, and an install left over a gigabyte behind."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # a signal ignored stays ignored: `nohup` ignores SIGHUP so the command outlives its terminal
    stops = [s for s in signals if signal.getsignal(s) != signal.SIG_IGN]
    previous = {stop: signal.signal(stop, interrupt) for stop in stops}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


@contextmanager
def progress_on_stderr(
    description: str, total: int, quiet: bool, columns: tuple[ProgressColumn, ...] = ()
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (silent with --json so stdout stays machine-readable,
    and off a terminal, where it showed nothing but an empty line); yields what advances it
    by a number of steps. `columns`: rich's default ones unless given."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    disable = quiet or not console.is_terminal
    with Progress(*columns, console=console, disable=disable, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advance: progress.advance(task, advance)
