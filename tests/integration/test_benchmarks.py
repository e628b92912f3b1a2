"""Benchmark scripts that start gateways or load the bundled model, at tiny sizes: they run,
stop what they started, and print the fields docs/benchmarks.md quotes. No number is judged."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest
from benchmarks import gateway_overhead, special_token_pieces


def test_gateway_overhead_prints_both_sides_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the gateways' scratch directories
    monkeypatch.setattr(gateway_overhead, "REQUESTS", 3)
    monkeypatch.setattr(gateway_overhead, "THROUGHPUT_SECONDS", 1)
    monkeypatch.setattr(sys, "argv", ["gateway_overhead"])
    gateway_overhead.main()
    report = json.loads(capsys.readouterr().out)
    for side in ("direct", "via_gateway", "via_gateway_with_privacy_guard"):
        assert report[side]["samples"] == 3
        assert {"p50_ms", "p95_ms", "mean_ms"} <= set(report[side])
    assert report["direct_rps"] > 0
    assert report["via_gateway_rps"] > 0
    assert report["throughput_ratio"] == pytest.approx(
        report["via_gateway_rps"] / report["direct_rps"], rel=0.01
    )
    assert list(tmp_path.iterdir()) == []  # every gateway's config and request log removed


def test_special_token_pieces_prints_both_ways_per_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(special_token_pieces, "COUNTS", [20, 40])
    monkeypatch.setattr(special_token_pieces, "ROUNDS", 1)
    monkeypatch.setattr(sys, "argv", ["special_token_pieces"])
    special_token_pieces.main()
    report = json.loads(capsys.readouterr().out)
    assert set(report["special_tokens"]) == {"20", "40"}
    for ways in report["special_tokens"].values():
        assert set(ways) == {"whole_s", "pieces_s", "whole_over_pieces"}
    assert set(report["prose"]) == {"plain_s", "trie_s", "plain_over_trie"}
