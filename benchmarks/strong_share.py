"""Strong-call share of a calibrated router under `max_strong_share`, per traffic mix.

Usage: .venv/bin/python benchmarks/strong_share.py --artifact PATH [--data F.jsonl ...]
       [--budget 0.3 ...]
Prints JSON: for each budget and each mix (the rows of all files shuffled together, then each
file's alone), the share sent strong by the calibrated threshold alone and by the gateway's
decision, which also holds the budget on the recent traffic (`routing/traffic.py`). The rows
are decided one by one in a shuffled order, as they would arrive. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from benchmarks.router_latency import DEFAULT_DATA


def main() -> None:
    from smallfirst.routing.learned import LearnedRouter
    from smallfirst.routing.traffic import TrafficCalibration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="learned router artifact")
    parser.add_argument("--data", action="append", type=Path)
    parser.add_argument("--budget", action="append", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = args.data or DEFAULT_DATA
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        parser.error(f"no data at {', '.join(missing)} (--data ROWS.jsonl)")
    budgets = args.budget or [0.1, 0.3, 0.5]
    if not all(0 < budget <= 1 for budget in budgets):
        parser.error(f"--budget must be above 0 and at most 1, got {budgets}")
    router = LearnedRouter.load(args.artifact)
    calibration = router.calibration
    if calibration is None:
        parser.error(f"{args.artifact} has no calibration table")
    scores = {path.stem: _scores(router, path) for path in files}
    mixes = {"all": [s for rows in scores.values() for s in rows], **scores}
    report: dict[str, Any] = {}
    for budget in budgets:
        calibrated = calibration.threshold(max_strong_share=budget)
        for name, rows in mixes.items():
            shuffled = random.Random(args.seed).sample(rows, len(rows))
            traffic = TrafficCalibration()
            served = [s >= traffic.cap_for(s, budget, calibrated) for s in shuffled]
            report[f"{budget:g} {name}"] = {
                "rows": len(rows),
                "calibrated_alone": round(sum(s >= calibrated for s in rows) / len(rows), 4),
                "served": round(sum(served) / len(rows), 4),
            }
    print(json.dumps(report, indent=1))


def _scores(router: Any, path: Path) -> list[float]:
    from smallfirst.routing.data import read_rows

    return [float(s) for s in router.score_batch([row.messages for row in read_rows(path)])]


if __name__ == "__main__":
    main()
