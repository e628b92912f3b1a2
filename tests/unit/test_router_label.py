"""`smallfirst router label` with fake models: scoring, judge parsing, resuming."""

import asyncio
import fcntl
import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.errors import UpstreamError
from smallfirst.routing.label import LabelJob, label_file, parse_rating, score_against_reference
from smallfirst.service import Gateway
from tests.helpers import fake_backend, fake_settings


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("She makes $18 a day.", "9 * 2 = 18\n#### 18", 1.0),
        ("It is 1,250 in total", "#### 1250", 1.0),
        ("Maybe 17 or 19", "#### 18", 0.0),
        ("No number here", "#### 18", 0.0),
        ("The answer is (B) because", "B", 1.0),
        ("B is wrong, the answer is C", "C", 0.0),  # the first letter given is the answer
        ("It is the city of Paris.", "Paris", 1.0),
        # A reference with a unit is still a number: "$142" contained "$42" as text.
        ("The total is $142.", "$42", 0.0),
        ("It is 420%", "42%", 0.0),
        ("42 dollars", "$42", 1.0),
        ("The answer is 42.", "42.0", 1.0),
        ("\u22125", "-5", 1.0),
        # "a" and "I" as words are not the option ("I" was the letter of every upper-cased "I").
        ("I think it is B", "B", 1.0),
        ("A good guess is C", "C", 1.0),
        ("I think that is b", "a", 0.0),
        ("A is correct.", "A", 1.0),
        ("B", "(B)", 1.0),
        # Text references are whole words.
        ("yesterday", "yes", 0.0),
        ("I know", "no", 0.0),
        ("  YES ", "yes", 1.0),
    ],
)
def test_reference_scoring(answer: str, reference: str, score: float) -> None:
    assert score_against_reference(answer, reference) == score


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("8", 0.8),
        ("Rating: 10/10", 1.0),
        ("I would rate it 7 out of 10.", 0.7),
        ("**7.5**\n\nA clear answer.", 0.75),
        ("I cannot rate this", None),
        # Numbers that are no rating (the bundled model as a judge wrote these).
        ("The answer is 2 * 2", None),
        ("A. 4", None),
        ("1. The user provided a clear and", None),
        ("0", None),
    ],
)
def test_judge_rating_parsing(reply: str, rating: float | None) -> None:
    assert parse_rating(reply) == rating


def test_label_cli_writes_schema_rows_and_resumes(tmp_path: Path) -> None:
    config = _fake_config(tmp_path, weak_reply="I think 7.", strong_reply="#### 12")
    rows = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"q {i}"}], "reference": ref}
        for i, ref in enumerate(["#### 12", "#### 7", "#### 3"])
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    out = tmp_path / "out.jsonl"
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    args += ["--reference", "--out", str(out), "--config", str(config)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    # only the summary: the progress bar's last frame came first on stdout
    assert first.stdout.startswith("labelled 2 new rows (0 already")
    assert first.stderr == ""
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = CliRunner().invoke(app, args)
    assert "labelled 1 new row (2 already" in second.output
    # q0: only big right; q1: only tiny right (7); q2: neither (reference 3)
    assert (
        "3 rows: weak mean score 0.333, strong 0.333; the strong model did better on 1, "
        "worse on 1, the same on 1"
    ) in second.output
    labelled = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(labelled) == {"q0", "q1", "q2"}
    assert labelled["q0"]["weak"] == {"model": "tiny", "score": 0.0}
    assert labelled["q0"]["strong"] == {"model": "big", "score": 1.0}
    assert labelled["q1"]["weak"]["score"] == 1.0
    assert labelled["q1"]["weak_response"] == "I think 7."
    confidence = labelled["q1"]["weak_confidence"]  # the fake model's tokens: logprob -0.05
    assert confidence["tokens"] == 3
    assert confidence["mean_logprob"] == pytest.approx(-0.05)


def test_label_cli_usage_errors(tmp_path: Path) -> None:
    base = ["router", "label", "--data", str(tmp_path / "none.jsonl"), "--weak", "a"]
    both = CliRunner().invoke(
        app, [*base, "--strong", "b", "--out", "o", "--reference", "--judge", "j"]
    )
    assert both.exit_code == 2
    missing = CliRunner().invoke(app, [*base, "--strong", "b", "--out", "o", "--reference"])
    assert missing.exit_code == 2


def _fake_config(tmp_path: Path, weak_reply: str = "7", strong_reply: str = "12") -> Path:
    """A config of two fake models: `tiny` (edge) and `big` (cloud), each with one reply."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\nmodels:\n"
        f"  - {{id: tiny, tier: edge, backend: fake, replies: ['{weak_reply}']}}\n"
        f"  - {{id: big, tier: cloud, backend: fake, replies: ['{strong_reply}']}}\n"
    )
    return config


GOOD = {"id": "q0", "messages": [{"role": "user", "content": "q"}], "reference": "#### 7"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param([b"{not json"], "{data}:2: not JSON", id="malformed"),
        pytest.param([b"\xff"], "{data}:2: not UTF-8 text", id="binary"),
        pytest.param([b"[1, 2]"], "{data}:2: expected a JSON object, got list", id="list"),
        pytest.param(
            [json.dumps({"messages": GOOD["messages"]}).encode()], "{data}:2: no `id`", id="no-id"
        ),
        pytest.param(
            [json.dumps({"id": "x"}).encode()],
            "{data}:2: `messages` must be a non-empty list",
            id="no-messages",
        ),
        pytest.param(
            [json.dumps({"id": "x", "messages": ["hi"]}).encode()],
            "{data}:2: `messages.0`: Input should be a valid dictionary",
            id="message-text",
        ),
        pytest.param(
            [json.dumps({"id": "x", "messages": GOOD["messages"]}).encode()],
            "{data}:2: no `reference`",
            id="no-reference",
        ),
    ],
)
def test_a_bad_prompt_row_is_named_before_any_model_runs(
    tmp_path: Path, lines: list[bytes], message: str
) -> None:
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_bytes(b"\n".join([json.dumps(GOOD).encode(), *lines]) + b"\n")
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    result = CliRunner().invoke(
        app, [*args, "--reference", "--out", str(out), "-c", str(_fake_config(tmp_path))]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(data=data))
    assert not out.exists()  # nothing was labelled


@pytest.mark.parametrize(
    ("data_text", "out_name", "message"),
    [
        pytest.param("", "out.jsonl", "{data}: no rows to label", id="empty-data"),
        pytest.param(json.dumps(GOOD), "folder", "cannot write {out}: it is a directory", id="dir"),
        pytest.param(
            json.dumps(GOOD),
            "a_file/out.jsonl",
            "cannot write {out}: {tmp}/a_file is not a",
            id="parent-file",
        ),
        pytest.param(
            json.dumps(GOOD), "not_labels.jsonl", "--out: {out}:1: `messages` must be", id="resume"
        ),
    ],
)
def test_label_refuses_empty_data_and_an_unusable_out_first(
    tmp_path: Path, data_text: str, out_name: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    (tmp_path / "not_labels.jsonl").write_text('{"id": "x"}\n')
    data, out = tmp_path / "in.jsonl", tmp_path / out_name
    data.write_text(data_text)
    args = ["router", "label", "--data", str(data), "--weak", "tiny", "--strong", "big"]
    result = CliRunner().invoke(
        app, [*args, "--reference", "--out", str(out), "-c", str(_fake_config(tmp_path))]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(data=data, out=out, tmp=tmp_path))
    assert "labelled" not in result.stdout


def _label(tmp_path: Path, data: Path, out: Path, *extra: str) -> Result:
    args = ["router", "label", "--data", str(data), "--out", str(out), "--weak", "tiny"]
    config = _fake_config(tmp_path, weak_reply="7", strong_reply="The answer is 2 * 2")
    return CliRunner().invoke(app, [*args, "-c", str(config), *extra])


def _prompts(path: Path, *rows: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_judge_reply_without_a_rating_leaves_the_score_null(tmp_path: Path) -> None:
    data = _prompts(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "out.jsonl"
    result = _label(tmp_path, data, out, "--strong", "big", "--judge", "big")
    assert result.exit_code == 0, result.output
    (row,) = map(json.loads, out.read_text().splitlines())
    assert row["weak"]["score"] is None  # was 0.0: below the worst rating
    assert "1 row without a score (the judge gave no rating" in result.output


@pytest.mark.parametrize(
    ("second_run", "message"),
    [
        pytest.param(
            ["--strong", "tiny"], "{out}:1: labelled with --strong big, not tiny", id="models"
        ),
        pytest.param(
            ["--strong", "big", "--changed"],
            "{out}:1: 'q0' was labelled for other messages than --data has now",
            id="prompt",
        ),
    ],
)
def test_resuming_refuses_labels_made_otherwise(
    tmp_path: Path, second_run: list[str], message: str
) -> None:
    data, out = _prompts(tmp_path / "in.jsonl", GOOD), tmp_path / "out.jsonl"
    assert _label(tmp_path, data, out, "--strong", "big", "--reference").exit_code == 0
    if "--changed" in second_run:
        second_run.remove("--changed")
        _prompts(data, GOOD | {"messages": [{"role": "user", "content": "another q"}]})
    result = _label(tmp_path, data, out, *second_run, "--reference")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(out=out))
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param([GOOD, GOOD], "{data}:2: id 'q0' is also on line 1", id="duplicate-id"),
        pytest.param(
            [GOOD | {"messages": [{"role": "user", "content": " "}]}],
            "{data}:1: every message is empty",
            id="empty-prompt",
        ),
        pytest.param([GOOD | {"reference": None}], "{data}:1: no `reference`", id="null-ref"),
        pytest.param([GOOD | {"reference": "#### "}], "{data}:1: `reference` is empty", id="blank"),
    ],
)
def test_prompt_rows_that_cannot_be_labelled_are_refused(
    tmp_path: Path, rows: list[dict[str, object]], message: str
) -> None:
    data, out = _prompts(tmp_path / "in.jsonl", *rows), tmp_path / "out.jsonl"
    result = _label(tmp_path, data, out, "--strong", "big", "--reference")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(data=data))


def test_the_prompt_file_is_no_output(tmp_path: Path) -> None:
    data = _prompts(tmp_path / "in.jsonl", GOOD)
    result = _label(tmp_path, data, data, "--strong", "big", "--reference")
    assert result.exit_code == 2
    assert "is the --data file" in result.stderr


def test_out_in_a_new_folder_and_after_a_last_line_without_newline(tmp_path: Path) -> None:
    data = _prompts(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "new" / "out.jsonl"
    assert _label(tmp_path, data, out, "--strong", "big", "--reference").exit_code == 0
    out.write_text(out.read_text().rstrip("\n"))  # as an editor may save it
    _prompts(data, GOOD, GOOD | {"id": "q1"})
    result = _label(tmp_path, data, out, "--strong", "big", "--reference")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["q0", "q1"]


async def test_a_failed_row_stops_the_rows_under_way(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.models[0].token_delay_s = 0.05  # type: ignore[union-attr]
    gateway = Gateway(settings)
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500: boom"))
    rows = [GOOD | {"id": f"q{i}"} for i in range(3)]
    job = LabelJob(weak="tiny", strong="big", judge=None)
    with pytest.raises(UpstreamError):
        await label_file(gateway, rows, tmp_path / "out.jsonl", job, 2, lambda: None)
    # They went on after the error, through the gateway the caller was closing.
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await gateway.aclose()


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_a_stop_says_the_labels_so_far_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Ctrl-C exited 130 with no word of resuming; SIGTERM (`kill`, a job's time limit)
    ended it without a word, exit 143."""
    data, out = _prompts(tmp_path / "in.jsonl", GOOD, GOOD | {"id": "q1"}), tmp_path / "out.jsonl"
    assert _label(tmp_path, data, out, "--strong", "big", "--reference").exit_code == 0
    _prompts(data, GOOD, GOOD | {"id": "q1"}, GOOD | {"id": "q2"})

    async def interrupted(*args: object, **kwargs: object) -> int:
        if stop == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(1)  # the handler raises within the sleep
        raise KeyboardInterrupt

    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    monkeypatch.setattr("smallfirst.routing.label.label_file", interrupted)
    try:
        result = _label(tmp_path, data, out, "--strong", "big", "--reference")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == []  # the command took it, as it takes Ctrl-C
    assert result.exit_code == 130
    assert result.stderr == (
        f"Error: interrupted (the rows labelled so far are in {out}: rerun to resume)\n"
    )


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Both labelled every row into the file: each row twice, and with other models the
    labels of both mixed in one file."""
    data, out = _prompts(tmp_path / "in.jsonl", GOOD), tmp_path / "out.jsonl"
    with out.open("a") as first_run:
        fcntl.flock(first_run, fcntl.LOCK_EX)  # as a run holds it
        result = _label(tmp_path, data, out, "--strong", "big", "--reference")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: another `router label` is writing to {out}: wait for it, or give another --out\n"
    )
    assert out.read_text() == ""
    assert _label(tmp_path, data, out, "--strong", "big", "--reference").exit_code == 0


def test_a_run_that_labels_nothing_leaves_no_empty_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is held from the start of the run: one it made stays only with rows in it."""
    data, out = _prompts(tmp_path / "in.jsonl", GOOD), tmp_path / "out.jsonl"

    async def failed(*args: object, **kwargs: object) -> int:
        assert out.exists()
        raise UpstreamError("big: upstream answered 500: boom")

    monkeypatch.setattr("smallfirst.routing.label.label_file", failed)
    result = _label(tmp_path, data, out, "--strong", "big", "--reference")
    assert result.exit_code == 1
    assert result.stderr == "Error: big: upstream answered 500: boom\n"
    assert not out.exists()
