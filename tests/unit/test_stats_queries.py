"""`summarize` over random logs, checked against the same figures recomputed in Python from
the rows, and how often it reads the table: the figures come from one GROUP BY pass and the
percentiles from ordered indexes, added up or picked in Python."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smallfirst.logs import RequestLog, RequestRecord
from smallfirst.logs.stats import Summary, summarize
from smallfirst.percentiles import percentile

NOW = time.time()
DAY_S = 86400.0
TIERS = ["edge", "onprem", "cloud", "embeddings", "gpu-box", None]


def random_row(rng: random.Random, number: int) -> dict[str, Any]:
    recent = rng.random() < 0.08  # a 2-hour window holds under a tenth of the log
    tier = rng.choice(TIERS)
    entities = {kind: rng.randint(1, 3) for kind in rng.sample(["PERSON", "IBAN_CODE"], 2)}
    return {
        "id": f"r{number}",
        "created_at": NOW - rng.uniform(0, 7000 if recent else 10 * DAY_S),
        "endpoint": "chat",
        "model_requested": "auto",
        "tier": tier,
        # no model: refused, or left before routing
        "status": rng.choice([499, 400, 429] if tier is None else [200, 200, 200, 499, 502]),
        "prompt_tokens": rng.choice([0, rng.randint(1, 500)]),
        "cached_tokens": rng.randint(0, 50),
        "completion_tokens": rng.randint(0, 300),
        "latency_ms": rng.choice([float(rng.randint(1, 20)), rng.uniform(1, 5000)]),  # ties too
        "ttft_ms": rng.choice([None, rng.uniform(1, 900)]),
        "cost_usd": rng.choice([0.0, rng.uniform(0, 0.01)]),
        "baseline_cost_usd": rng.uniform(0, 0.02),
        "router": rng.choice([None, "none", "rules", "learned"]),
        "escalations": rng.choice([None, None, "tiny", "tiny,mid"]),
        "pii_action": rng.choice([None, None, "redact", "block"]),
        "pii_entities": rng.choice([None, json.dumps(entities)]),
    }


def answered(row: dict[str, Any]) -> bool:
    return bool(row["status"] < 400 or (row["status"] == 499 and row["tier"] is not None))


def write_log(path: Path, rows: list[dict[str, Any]], unknown_baselines: set[str]) -> None:
    log = RequestLog(path)
    for row in rows:
        log.record(RequestRecord(**row))
    log.close()
    connection = sqlite3.connect(path)
    with connection:  # as 0005 leaves rows logged before baselines were
        connection.executemany(
            "UPDATE requests SET baseline_cost_usd = NULL WHERE id = ?",
            [(row_id,) for row_id in unknown_baselines],
        )
    connection.close()


def tier_order(tier: str) -> tuple[int, str]:
    """Cheapest first, then the others by name."""
    order = ["edge", "onprem", "cloud"]
    return (order.index(tier) if tier in order else len(order), tier)


def expected_tiers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {row["tier"] for row in rows if row["tier"] is not None}
    tiers = []
    for tier in sorted(names, key=tier_order):
        of_tier = [row for row in rows if row["tier"] == tier]
        if not any(answered(r) or r["cost_usd"] > 0 or r["prompt_tokens"] > 0 for r in of_tier):
            continue
        ended = [row["latency_ms"] for row in of_tier if row["status"] < 400]
        timed = [row["ttft_ms"] for row in of_tier if answered(row) and row["ttft_ms"] is not None]
        tiers.append(
            {
                "tier": tier,
                "requests": sum(answered(row) for row in of_tier),
                "prompt_tokens": sum(row["prompt_tokens"] for row in of_tier),
                "cached_tokens": sum(row["cached_tokens"] for row in of_tier),
                "completion_tokens": sum(row["completion_tokens"] for row in of_tier),
                "cost_usd": pytest.approx(sum(row["cost_usd"] for row in of_tier)),
                "baseline_cost_usd": pytest.approx(
                    sum(row["baseline_cost_usd"] or 0.0 for row in of_tier)
                ),
                "latency_p50_ms": pytest.approx(percentile(ended, 50)) if ended else None,
                "latency_p95_ms": pytest.approx(percentile(ended, 95)) if ended else None,
                "ttft_p50_ms": pytest.approx(percentile(timed, 50)) if timed else None,
            }
        )
    return tiers


def check(summary: Summary, rows: list[dict[str, Any]]) -> None:
    failed = [row for row in rows if not answered(row)]
    unknown = [row for row in rows if row["baseline_cost_usd"] is None]
    routed: dict[str, Counter[str]] = {}
    for row in rows:
        if answered(row) and row["router"] not in (None, "none"):
            routed.setdefault(row["router"], Counter())[row["tier"]] += 1
    entities: Counter[str] = Counter()
    for row in rows:
        entities.update(json.loads(row["pii_entities"] or "{}"))
    assert (summary.requests, summary.answered) == (len(rows), len(rows) - len(failed))
    statuses = Counter(str(row["status"]) for row in failed)
    assert list(summary.failed_by_status.items()) == sorted(
        statuses.items(), key=lambda s: int(s[0])
    )
    assert summary.cost_usd == pytest.approx(sum(row["cost_usd"] for row in rows))
    assert summary.failed_cost_usd == pytest.approx(sum(row["cost_usd"] for row in failed))
    known = sum(row["baseline_cost_usd"] or 0.0 for row in rows)
    assert summary.baseline_cost_usd == pytest.approx(known)
    assert summary.baseline_unknown_requests == len(unknown)
    assert summary.baseline_unknown_cost_usd == pytest.approx(sum(r["cost_usd"] for r in unknown))
    assert summary.routed_by_router == {router: dict(routed[router]) for router in routed}
    assert list(summary.routed_by_router) == sorted(routed)
    for tiers in summary.routed_by_router.values():
        assert list(tiers) == sorted(tiers, key=tier_order)
    assert summary.escalated_requests == sum(row["escalations"] is not None for row in rows)
    actions = Counter(row["pii_action"] for row in rows if row["pii_action"] is not None)
    assert list(summary.pii_actions.items()) == sorted(actions.items())
    assert list(summary.pii_entities.items()) == sorted(entities.items())
    assert [tier.model_dump() for tier in summary.tiers] == expected_tiers(rows)


@pytest.mark.parametrize("seed", range(6))
def test_a_random_log_sums_up_as_its_rows_do(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rows = [random_row(rng, number) for number in range(rng.randint(150, 400))]
    rows.append(random_row(rng, len(rows)) | {"created_at": NOW - DAY_S})  # on a window's edge
    unknown = {row["id"] for row in rows if rng.random() < 0.2}
    write_log(tmp_path / "requests.db", rows, unknown)
    for row in rows:
        if row["id"] in unknown:
            row["baseline_cost_usd"] = None
    for since in (
        None,
        NOW - 600,
        NOW - 7200,
        NOW - DAY_S,
        NOW - 3 * DAY_S,
        NOW - 9 * DAY_S,
        NOW + 1,
    ):
        in_window = [row for row in rows if since is None or row["created_at"] >= since]
        check(summarize(tmp_path / "requests.db", since), in_window)


def test_a_large_window_reads_the_table_twice_and_sorts_no_rows(tmp_path: Path) -> None:
    """A query per figure read the table 17 times and sorted a tier's rows once per
    percentile (`stats --since all` on 200,000 rows: 3.1 s)."""
    from smallfirst.logs import stats as stats_module

    rng = random.Random(1)
    path = tmp_path / "requests.db"
    write_log(path, [random_row(rng, number) for number in range(300)], set())
    statements: list[str] = []
    real_connect = stats_module.connect

    def traced_connect(log_path: Path) -> sqlite3.Connection:
        connection = real_connect(log_path)
        connection.set_trace_callback(statements.append)
        return connection

    reader = sqlite3.connect(path)
    for since in (None, NOW - 9 * DAY_S):
        statements.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stats_module, "connect", traced_connect)
            summary = summarize(path, since)
        assert len(summary.tiers) == 5
        plans = [
            " | ".join(step[3] for step in reader.execute(f"EXPLAIN QUERY PLAN {statement}"))
            for statement in statements
            if "FROM requests" in statement
        ]
        table_reads = [plan for plan in plans if re.search("SCAN requests(?! USING)", plan)]
        assert len(table_reads) == 2, plans  # the figures, the PII entities
        assert not [plan for plan in plans if "FOR ORDER BY" in plan]
    reader.close()
