"""Shared CLI helpers: whole-but-unpadded lines off a terminal, output paths checked early."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from rich import box
from rich.table import Table
from typer.core import TyperGroup
from typer.testing import CliRunner

from smallfirst.cli.common import check_writable, output_console, stops_as_interrupt


def test_piped_tables_keep_whole_lines_without_padding(capsys: pytest.CaptureFixture[str]) -> None:
    long_reason = "score 0.709 >= 0.700 -> strong; " * 8
    table = Table("id", "why", box=box.SIMPLE_HEAD, show_edge=False)  # as `requests` prints
    table.add_row("1", long_reason)
    table.add_row("2", "short")
    output_console().print(table)
    lines = capsys.readouterr().out.splitlines()
    assert any(long_reason.strip() in line for line in lines)  # never cut at 80 columns
    assert [line for line in lines if line != line.rstrip()] == []
    assert max(map(len, lines)) < len(long_reason) + 20  # as wide as the content, not 10,000


def test_a_table_to_a_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    """`smallfirst models >&-`: Python has no sys.stdout, and the table's lines stopped the
    command with an AttributeError; click's echo skips a closed stdout, as this does."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SMALLFIRST__DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "smallfirst", "models"],
        stderr=subprocess.PIPE,
        text=True,
        timeout=50,
        env=env,
        preexec_fn=lambda: os.close(1),
    )
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    """`smallfirst config show > /dev/full` ended in a 40-line OSError traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SMALLFIRST__DATA_DIR": str(tmp_path)}
    with Path("/dev/full").open("w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "smallfirst", "config", "show"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=50,
            env=env,
        )
    assert (done.returncode, done.stderr) == (1, "Error: cannot write: No space left on device\n")


@pytest.mark.parametrize(
    ("target", "directory", "reason"),
    [
        ("folder", False, "it is a directory"),
        ("a_file", True, "it is a file, not a directory"),
        ("a_file/inside.jsonl", False, "{tmp}/a_file is not a directory"),
    ],
)
def test_an_unwritable_path_is_refused_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    directory: bool,
    reason: str,
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(typer.Exit) as exited:
        check_writable(tmp_path / target, directory=directory)
    assert exited.value.exit_code == 2
    reason = reason.format(tmp=tmp_path)
    assert capsys.readouterr().err == f"Error: cannot write {tmp_path / target}: {reason}\n"
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_writable_paths_pass_and_leave_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text("{}\n")
    check_writable(tmp_path / "old.jsonl")  # appended to or replaced later
    check_writable(tmp_path / "new" / "deeper" / "out.jsonl")  # parents are created later
    check_writable(tmp_path / "artifact", directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]
    assert (tmp_path / "old.jsonl").read_text() == "{}\n"


def test_a_signal_ignored_by_nohup_stays_ignored() -> None:
    """`nohup smallfirst rag ingest ...` ignores SIGHUP so it outlives its terminal: taking
    SIGHUP over interrupted it when the terminal closed (review)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stops_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def _help_texts() -> Iterator[tuple[list[str], list[str]]]:
    """Each command's words after `smallfirst`, and the help texts of its options."""
    from smallfirst.cli import app

    commands = [([], typer.main.get_command(app))]
    while commands:
        path, command = commands.pop()
        yield path, [p.help for p in command.params if getattr(p, "help", None)]
        if isinstance(command, TyperGroup):
            commands.extend(([*path, name], sub) for name, sub in command.commands.items())


def test_every_option_help_is_printed_whole() -> None:
    """`--help` is rendered by rich, which took "[default: ...]" in a help text for markup and
    dropped it (`rag search --help` said "Folder holding rag.sqlite .")."""
    from smallfirst.cli import app

    runner = CliRunner()
    for path, texts in _help_texts():
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
        for text in texts:
            assert text in shown, (path, text)
