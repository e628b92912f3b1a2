"""The benchmark scripts run at tiny sizes and print the fields docs/benchmarks.md quotes.
Smoke tests: nothing here looks at a number."""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from benchmarks import (
    privacy_conversation,
    privacy_latency,
    rag_latency,
    router_latency,
    stats_latency,
    strong_share,
)
from benchmarks.common import built_once, running_gateway

PII_TEXTS = [
    "Hi, I'm Anna Berg; call me on +46 8 123 456 78 or mail anna@example.org.",
    "The parcel goes to 12 Elm Street, Springfield, IL 62704, for John Carter.",
]


def printed_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The JSON a script printed: the whole output, or its last line after a summary."""
    out = capsys.readouterr().out
    try:
        return dict(json.loads(out))
    except json.JSONDecodeError:
        return dict(json.loads(out.strip().splitlines()[-1]))


def run(
    monkeypatch: pytest.MonkeyPatch, main: object, *args: object, script: str = "bench"
) -> None:
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    main()  # type: ignore[operator]


def test_router_latency_times_each_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r{i}",
                    "messages": [{"role": "user", "content": f"What is {i} + {i}? " * (i + 1)}],
                    "weak": {"score": i % 2},
                    "strong": {"score": 1},
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    run(monkeypatch, router_latency.main, "--data", rows, "--samples", 4)
    report = printed_json(capsys)
    for router in ("random", "length", "rules"):
        assert set(report[router]) == {"p50_ms", "p95_ms", "p50_vs_length"}
    assert report["_setup"] == {"samples": 4, "data": [str(rows)], "artifact": None}
    for samples in (1, 7):  # a traceback from statistics.quantiles, and from random.sample
        with pytest.raises(SystemExit):
            run(monkeypatch, router_latency.main, "--data", rows, "--samples", samples)
        assert f"--samples must be 2 to 6 (the rows read), got {samples}" in capsys.readouterr().err


def test_router_latency_without_its_data_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(router_latency, "DEFAULT_DATA", [tmp_path / "gsm8k.jsonl"])
    with pytest.raises(SystemExit):
        run(monkeypatch, router_latency.main)
    assert f"no data at {tmp_path / 'gsm8k.jsonl'}" in capsys.readouterr().err


def test_strong_share_reports_each_budget_and_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from smallfirst.routing.learned import LearnedRouter
    from tests.unit.test_routing_budget_cap import Calibrated

    files = []
    for name, scores in (("easy", [0.1, 0.2, 0.3]), ("hard", [0.5, 0.7, 0.9, 0.95])):
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text(
            "".join(
                json.dumps(
                    {
                        "id": f"{name}{i}",
                        "messages": [{"role": "user", "content": str(score)}],
                        "weak": {"score": 0},
                        "strong": {"score": 1},
                    }
                )
                + "\n"
                for i, score in enumerate(scores)
            )
        )
    monkeypatch.setattr(LearnedRouter, "load", classmethod(lambda cls, path: Calibrated()))
    args = ["--artifact", "ART", "--data", files[0], "--data", files[1], "--budget", 0.3]
    run(monkeypatch, strong_share.main, *args)
    report = printed_json(capsys)
    assert set(report) == {"0.3 all", "0.3 easy", "0.3 hard"}
    assert report["0.3 hard"]["rows"] == 4
    assert report["0.3 hard"]["calibrated_alone"] == 0.75  # 0.7, 0.9 and 0.95 reach 0.6
    with pytest.raises(SystemExit):
        run(monkeypatch, strong_share.main, "--artifact", "ART", "--budget", 0, "--data", files[0])
    assert "--budget must be above 0" in capsys.readouterr().err


def test_rag_latency_times_each_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its cached store
    run(monkeypatch, rag_latency.main, "--chunks", 50, "--queries", 6)
    report = printed_json(capsys)
    assert (report["chunks"], report["queries"], report["k"]) == (50, 6, 10)
    methods = ("bm25", "vector", "hybrid", "vector_sqlite_vec_scan", "hybrid_from_sqlite")
    for method in methods:
        assert set(report[method]) == {"p50_ms", "p95_ms"}


def test_stats_latency_times_each_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its cached log
    run(monkeypatch, stats_latency.main, "--rows", 200, "--rounds", 2)
    report = printed_json(capsys)
    assert (report["rows"], report["rounds"]) == (200, 2)
    for timings in (report, report["by_key"]):  # `summarize` and `summarize_by_key`
        for window in ("1h", "24h", "7d", "30d", "all"):
            assert set(timings[window]) == {"p50_ms", "p95_ms", "mean_ms", "samples", "cpu_p50_ms"}
            assert timings[window]["samples"] == 2
    logs = list((tmp_path / f"smallfirst-stats-bench-{os.geteuid()}").glob("*.db"))
    assert [path.name for path in logs] == ["requests-200-7.db"]


class SaysWhenWritten:
    def __init__(self) -> None:
        self.written = threading.Event()
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        self.written.set()
        return len(text)

    def flush(self) -> None:
        pass


def test_a_cache_two_runs_build_at_once_is_built_by_one_and_used_by_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs built the same SQLite file together, and one failed with "database is
    locked"."""
    cached = tmp_path / "data.db"
    stderr = SaysWhenWritten()
    monkeypatch.setattr(sys, "stderr", stderr)
    second_run: list[float] = []
    builds: list[str] = []

    def second_build(partial: Path) -> None:
        builds.append("second")
        partial.write_text("second")

    second = threading.Thread(target=lambda: second_run.append(built_once(cached, second_build)))

    def first_build(partial: Path) -> None:
        builds.append("first")
        second.start()
        assert stderr.written.wait(timeout=60), "the second run never waited"
        partial.write_text("first")

    built_once(cached, first_build)
    second.join()
    assert builds == ["first"]
    assert second_run == [0.0]
    assert cached.read_text() == "first"
    assert f"waiting for another run building {cached}" in stderr.text


def test_privacy_latency_says_which_data_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pii.json"
    data.write_text(json.dumps([{"full_text": text} for text in PII_TEXTS]))
    run(monkeypatch, privacy_latency.main, "--data", data, "--prompts", 3, "--chars", 300)
    report = printed_json(capsys)
    assert (report["data"], report["prompts"], report["chars"]) == (str(data), 3, 300)
    for field in ("guard_p50_ms", "guard_p95_ms", "ner_p50_ms", "spacy_p50_ms"):
        assert isinstance(report[field], float)
    assert isinstance(report["guard_over_spacy"], float)


def test_privacy_conversation_without_data_says_it_repeats_one_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A silent fallback made the remembering side look ~100x faster: every turn was the
    same text."""
    missing = tmp_path / "absent.json"
    run(
        monkeypatch,
        privacy_conversation.main,
        *("--data", missing, "--conversations", 1, "--turns", 2, "--tools", 1),
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert f"no {missing}" in captured.err
    assert report["data"] == "built-in text"
    assert (report["conversations"], report["turns"], report["tools"]) == (1, 2, 1)
    assert {"remembering_mean_ms", "reading_all_mean_ms", "ratio"} <= set(report)


def test_a_gateway_that_cannot_start_fails_at_once_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to poll /readyz for a minute after the process had exited, and every run left
    its scratch directory in the temp dir."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = {"models": [{"id": "x", "tier": "edge", "backend": "no-such-backend"}]}
    with pytest.raises(RuntimeError, match="exited with 2"), running_gateway(config, "bad"):
        pass
    assert list(tmp_path.iterdir()) == []


SET_BY_ENVIRONMENT = [
    "choices",
    "gateway_overhead",
    "local_throughput",
    "local_tool_calls",
    "omp_wait_policy",
    "parallel_slots",
    "prompt_cache",
    "run_all",
    "special_token_pieces",
]


@pytest.mark.parametrize("name", SET_BY_ENVIRONMENT)
def test_help_describes_a_benchmark_instead_of_running_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """`--help` was ignored: it started a full run (gateways, minutes of load)."""
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as helped:
        run(monkeypatch, module.main, "--help", script=name)
    assert helped.value.code == 0
    assert module.__doc__.split("\n")[0] in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        run(monkeypatch, module.main, "--rounds", 1, script=name)
    assert refused.value.code == 2
