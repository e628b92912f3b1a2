"""`smallfirst chat` without a prompt: a conversation in the terminal, one line per turn."""

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app, serve
from smallfirst.errors import ContextLengthExceeded
from smallfirst.service import Gateway


def config_with_replies(tmp_path: Path, *replies: str) -> Path:
    config = tmp_path / "smallfirst.yaml"
    fake = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": list(replies)}
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "models": [fake]}))
    return config


def recorded_turns(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The message texts of each request the chat command sends, as they are sent."""
    sent: list[list[str]] = []
    stream = Gateway.stream

    async def recording(self: Gateway, request: Any, ctx: Any) -> Any:
        sent.append([m.text for m in request.messages])
        return await stream(self, request, ctx)

    monkeypatch.setattr(Gateway, "stream", recording)
    return sent


def test_a_conversation_keeps_its_turns_until_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_with_replies(tmp_path, "one", "two", "three")
    sent = recorded_turns(monkeypatch)
    result = CliRunner().invoke(
        app,
        ["chat", "--config", str(config), "--system", "Be brief."],
        input="Hi\n\nAnd then?\n/reset\nAgain\n/exit\nnever read\n",
    )
    assert result.exit_code == 0, result.output
    assert sent == [
        ["Be brief.", "Hi"],
        ["Be brief.", "Hi", "one", "And then?"],
        ["Be brief.", "Again"],
    ]
    assert result.stdout.splitlines() == ["one", "two", "three"]
    assert "(conversation cleared)" in result.stderr
    assert result.stderr.count("[tiny · edge]") == 3


def test_a_conversation_that_outgrew_the_context_says_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "smallfirst.yaml"
    fake = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["one", "two"]}
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "models": [fake]}))
    stream = Gateway.stream

    async def overflowing(self: Gateway, request: Any, ctx: Any) -> Any:
        if len(request.messages) > 1:  # the second turn no longer fits
            raise ContextLengthExceeded("This model's maximum context length is 8192 tokens.")
        return await stream(self, request, ctx)

    monkeypatch.setattr(Gateway, "stream", overflowing)
    result = CliRunner().invoke(
        app, ["chat", "--config", str(config)], input="Hi\nAnd then?\n/reset\nAgain\n"
    )
    assert "maximum context length" in result.stderr
    assert "(the conversation no longer fits: /reset starts over)" in result.stderr
    assert result.stdout.splitlines() == ["one", "two"]  # after /reset it answers again
    # it went on, and a script that fed it the turns learns that one failed (it exited 0)
    assert result.exit_code == 1
    assert result.stderr.endswith("Error: 1 turn(s) of the conversation failed\n")


def test_a_conversation_with_an_unknown_model_ends_at_once(tmp_path: Path) -> None:
    """Every turn would fail alike: one error before the first (it answered each line with
    the same error, then exited 0), naming the command that lists the models (it said "see
    GET /v1/models", the server's advice)."""
    config = tmp_path / "smallfirst.yaml"
    fake = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["one"]}
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "models": [fake]}))
    result = CliRunner().invoke(
        app, ["chat", "--config", str(config), "-m", "nope"], input="Hi\nAgain\n"
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: model 'nope' is not in the config; see `smallfirst models`\n"


def test_a_collection_is_asked_as_its_model_id(tmp_path: Path) -> None:
    """`chat -m rag/<collection>` answered from it, as `model: "rag/<collection>"` does on
    the server; refusing ids not in the config refused it too."""
    from smallfirst.rag import ingest_paths, open_store

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "kettle.md").write_text("# Kettle\n\nDescale it every Friday.")
    ingest_paths(open_store(tmp_path), [tmp_path / "docs"], collection="office")
    config = tmp_path / "smallfirst.yaml"
    fake = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": ["On Fridays."]}
    raw = {"data_dir": str(tmp_path), "models": [fake], "routing": {"router": "rules"}}
    config.write_text(yaml.safe_dump(raw))
    asked = ["chat", "When is the kettle descaled?", "--config", str(config), "-m", "rag/office"]
    result = CliRunner().invoke(app, asked)
    assert result.exit_code == 0, result.output
    assert result.stdout == "On Fridays.\n"
    assert "kettle.md" in result.stderr  # its source
    for unknown in (["-m", "rag/nope"], ["--rag", "nope"]):  # a usage error, as `-m nope` is
        gone = CliRunner().invoke(app, [*asked[:-2], *unknown])
        assert gone.exit_code == 2
        assert gone.stderr == (
            "Error: RAG collection 'nope' does not exist; see `smallfirst rag collections`\n"
        )


def test_max_tokens_below_one_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["chat", "Hi", "--max-tokens", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_text_piped_in_comes_before_the_question(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cat notes.txt | smallfirst chat "Summarise this"`: the notes were dropped."""
    config = config_with_replies(tmp_path, "one")
    sent = recorded_turns(monkeypatch)
    asked = ["chat", "Summarise this", "--config", str(config)]
    result = CliRunner().invoke(app, asked, input="My notes\nsecond line\n")
    assert result.exit_code == 0, result.output
    assert sent == [["My notes\nsecond line\n\nSummarise this"]]
    CliRunner().invoke(app, asked, input="")  # nothing piped: the question alone
    assert sent[-1] == ["Summarise this"]


@pytest.mark.timeout(30)
def test_leaving_at_the_prompt_does_not_wait_for_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at the conversation's prompt did nothing until Enter: `asyncio.run` waited
    for the executor thread blocked in `input()` (this test would hang)."""
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end)
    monkeypatch.setattr(sys, "stdin", stdin)

    async def wait_then_leave() -> None:
        reading = asyncio.ensure_future(serve._read_line("", interactive=True))
        await asyncio.sleep(0.05)
        reading.cancel()  # what asyncio.run does to its task on Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await reading

    try:
        asyncio.run(wait_then_leave())
    finally:
        os.close(write_end)  # the reading thread gets the end of input and ends
        for thread in threading.enumerate():
            if thread.name == "chat-input":
                thread.join(timeout=10)
        stdin.close()


@pytest.mark.timeout(60)
def test_leaving_while_a_pipe_is_read_ends_python_cleanly() -> None:
    """From a pipe (or at a terminal with `| tee`), `input()` in the reading thread held the
    stdin buffer's lock, and Python aborted at exit ("could not acquire lock ... at
    interpreter shutdown", review): the line is read from the file itself."""
    leave = (
        "import asyncio\n"
        "from smallfirst.cli import serve\n"
        "async def main():\n"
        "    try:\n"
        "        await asyncio.wait_for(serve._read_line('', interactive=False), 0.3)\n"
        "    except TimeoutError:\n"
        "        print('left')\n"
        "asyncio.run(main())\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", leave],
        stdin=subprocess.PIPE,  # open, and nothing written: the thread waits in its read
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        child.wait(timeout=50)  # stdin stays open all along
        assert child.stdout is not None
        assert child.stderr is not None
        out, err = child.stdout.read(), child.stderr.read()
    assert (child.returncode, out.strip(), err) == (0, b"left", b"")


@pytest.mark.timeout(60)
def test_a_conversation_with_stdin_closed_ends_as_at_the_end_of_input(tmp_path: Path) -> None:
    """`smallfirst chat <&-`: Python has no sys.stdin, and the conversation stopped with
    a traceback (AttributeError on None.isatty) rather than ending as `< /dev/null` does."""
    config = config_with_replies(tmp_path, "one")
    chat = [sys.executable, "-m", "smallfirst", "chat", "--config", str(config)]
    done = subprocess.run(
        chat, capture_output=True, text=True, timeout=50, preexec_fn=lambda: os.close(0)
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_an_empty_prompt_is_a_usage_error_unless_text_is_piped_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`smallfirst chat ""` sent the model an empty question, and it answered one."""
    config = config_with_replies(tmp_path, "one")
    sent = recorded_turns(monkeypatch)
    blank = CliRunner().invoke(app, ["chat", " ", "--config", str(config)], input="")
    assert (blank.exit_code, blank.stderr) == (
        2,
        "Error: the prompt is empty: give a question, or none for a conversation\n",
    )
    assert sent == []
    piped = CliRunner().invoke(app, ["chat", "", "--config", str(config)], input="My notes\n")
    assert piped.exit_code == 0, piped.output
    assert sent == [["My notes"]]


@pytest.mark.timeout(60)
def test_ctrl_d_at_the_terminal_ends_the_line_of_the_prompt(tmp_path: Path) -> None:
    """The shell's prompt came after "> " on the same line."""
    import pty

    config = config_with_replies(tmp_path, "one")
    terminal, child_end = pty.openpty()
    chat = [sys.executable, "-m", "smallfirst", "chat", "--config", str(config)]
    with subprocess.Popen(chat, stdin=child_end, stdout=child_end, stderr=child_end) as child:
        os.close(child_end)
        shown = b""
        while not shown.endswith(b"> "):
            shown += os.read(terminal, 1024)
        os.write(terminal, b"\x04")  # Ctrl-D
        assert child.wait(timeout=50) == 0
        with contextlib.suppress(OSError):  # EIO once the child's end is closed
            while chunk := os.read(terminal, 1024):
                shown += chunk
    os.close(terminal)
    assert shown.endswith(b"> \r\n")


def test_an_answer_cut_by_a_closed_pipe_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`smallfirst chat ... | head -c 20`: the stream was left to asyncio's clean-up, which
    ran after the request log had closed, so the request (and what it cost) was not logged."""
    import sqlite3

    import typer

    config = config_with_replies(tmp_path, "a long answer in many words")
    echo = typer.echo

    def closed_pipe(message: Any = None, *args: Any, err: bool = False, **kwargs: Any) -> None:
        if not err and message:
            raise BrokenPipeError(32, "Broken pipe")
        echo(message, *args, err=err, **kwargs)

    monkeypatch.setattr(typer, "echo", closed_pipe)
    result = CliRunner().invoke(app, ["chat", "Tell me more", "--config", str(config)])
    assert result.exit_code == 1  # typer's answer to a broken pipe, without a traceback
    log = sqlite3.connect(tmp_path / "requests.db")
    assert log.execute("SELECT model_answered, status FROM requests").fetchall() == [("tiny", 499)]


def test_an_answer_cut_at_the_token_limit_says_so(tmp_path: Path) -> None:
    """It ended mid-sentence, as an answer that had finished looks."""
    config = config_with_replies(tmp_path, "one two three four")
    asked = ["chat", "Count", "--config", str(config), "--max-tokens", "2"]
    result = CliRunner().invoke(app, asked)
    assert result.exit_code == 0, result.output
    assert result.stdout == "one two\n"
    assert "(the answer was cut at --max-tokens 2)" in result.stderr.splitlines()
    whole = CliRunner().invoke(app, asked[:-2])
    assert whole.stdout == "one two three four\n"
    assert "cut" not in whole.stderr


def test_an_upstreams_refusal_and_reasoning_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote model's refusal printed an empty answer, and its reasoning nothing: only
    the text was printed. The refusal is the answer; reasoning goes to stderr, ended before
    the answer starts."""
    from smallfirst.answers import RouteInfo, StreamAnswer
    from smallfirst.completions import Chunk, ModelInfo

    config = config_with_replies(tmp_path, "unused")
    model = ModelInfo(id="big", tier="cloud", backend="openai_compat", context_length=100)

    async def refusing(self: Gateway, request: Any, ctx: Any) -> StreamAnswer:
        async def chunks() -> Any:
            yield Chunk(reasoning="Hm, ")
            yield Chunk(reasoning="no.")
            yield Chunk(refusal="I can't help")
            yield Chunk(refusal=" with that.", finish_reason="content_filter")

        return StreamAnswer(RouteInfo(model=model, router="none", reason="by id"), chunks())

    monkeypatch.setattr(Gateway, "stream", refusing)
    result = CliRunner().invoke(app, ["chat", "Help me", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "I can't help with that.\n"
    assert result.stderr.splitlines() == [
        "Hm, no.",
        "(the answer was stopped by the model's content filter)",
        "[big · cloud]",
    ]


def test_help_and_unknown_commands_are_not_sent_to_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/help` (and a typo such as `/rest`) went to the model as a question."""
    config = config_with_replies(tmp_path, "one", "two")
    sent = recorded_turns(monkeypatch)
    lines = "/help\n/rest\n/usr/bin is what?\n/etc/hosts\n"
    result = CliRunner().invoke(app, ["chat", "--config", str(config)], input=lines)
    assert result.exit_code == 0, result.output
    assert sent == [["/usr/bin is what?"], ["/usr/bin is what?", "one", "/etc/hosts"]]
    assert result.stderr.count("/reset  start the conversation over") == 2
    assert "unknown command /rest; the commands:" in result.stderr


def chat_on_a_terminal(config: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """`smallfirst chat` with a pseudo-terminal as stdin, stdout and stderr: the child and
    the terminal's end."""
    import pty

    terminal, child_end = pty.openpty()
    chat = [sys.executable, "-m", "smallfirst", "chat", "--config", str(config), *args]
    child = subprocess.Popen(chat, stdin=child_end, stdout=child_end, stderr=child_end)
    os.close(child_end)
    return child, terminal


def read_until(terminal: int, shown: bytes, wanted: bytes) -> bytes:
    """What the terminal showed, read until it shows `wanted` again (or the child ends)."""
    seen = shown.count(wanted)
    with contextlib.suppress(OSError):  # EIO once the child's end is closed
        while shown.count(wanted) <= seen and (chunk := os.read(terminal, 1024)):
            shown += chunk
    return shown


def slow_replies(tmp_path: Path, *replies: str) -> Path:
    config = tmp_path / "smallfirst.yaml"
    fake = {"id": "tiny", "tier": "edge", "backend": "fake", "replies": list(replies)}
    fake["token_delay_s"] = 0.2
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "models": [fake]}))
    return config


@pytest.mark.timeout(90)
def test_ctrl_c_during_an_answer_ends_its_line(tmp_path: Path) -> None:
    """The shell's prompt came after the answer's last word, on its line."""
    import signal

    config = slow_replies(tmp_path, " ".join(["word"] * 200))
    child, terminal = chat_on_a_terminal(config, "Talk")
    shown = read_until(terminal, b"", b"word word")
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) == 130
    shown = read_until(terminal, shown, b"\n")
    os.close(terminal)
    assert shown.endswith(b"word\r\n"), shown[-60:]
    assert b"Traceback" not in shown


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_conversation_stops_the_answer_not_the_conversation(
    tmp_path: Path,
) -> None:
    """Ctrl-C to stop a rambling answer ended the whole conversation (exit 130), and what
    was said was lost. Now the answer stops, what it showed stays, and the prompt returns;
    at the prompt Ctrl-C still ends it."""
    import signal
    import sqlite3

    config = slow_replies(tmp_path, " ".join(["word"] * 200), "The second answer.")
    child, terminal = chat_on_a_terminal(config)
    shown = read_until(terminal, b"", b"> ")
    os.write(terminal, b"Talk\n")
    shown = read_until(terminal, shown, b"word word")
    child.send_signal(signal.SIGINT)
    shown = read_until(terminal, shown, b"> ")
    assert b"(answer stopped; what it showed stays in the conversation)" in shown
    os.write(terminal, b"And then?\n")
    shown = read_until(terminal, shown, b"> ")
    assert b"The second answer.\r\n" in shown
    child.send_signal(signal.SIGINT)  # at the prompt
    assert child.wait(timeout=60) == 130
    os.close(terminal)
    log = sqlite3.connect(tmp_path / "requests.db")
    statuses = log.execute("SELECT status FROM requests ORDER BY created_at").fetchall()
    assert statuses == [(499,), (200,)]
