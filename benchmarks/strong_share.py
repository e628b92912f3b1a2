"""Strong-call share of a calibrated router under `max_strong_share`, per traffic mix.

Usage: .venv/bin/python -m benchmarks.strong_share [--artifact PATH] [--data F.jsonl ...]
       [--budget 0.3 ...]
Without --artifact, one is trained on the data first, as `router train` would (~1 min).
Prints JSON: for each budget and each mix (the rows of all files shuffled together, then each
file's alone), the share sent strong by the calibrated threshold alone and by the gateway's
decision, which also holds the budget on the recent traffic (`routing/traffic.py`). The rows
are decided one by one in a shuffled order, as they would arrive. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from benchmarks.router_latency import DEFAULT_DATA


def main() -> None:
    from smallfirst.routing.data import read_rows
    from smallfirst.routing.learned import LearnedRouter, train_learned
    from smallfirst.routing.traffic import TrafficCalibration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="learned router artifact (default: trained here)")
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
    rows = {path.stem: read_rows(path) for path in files}
    if args.artifact is None:
        print("no --artifact: training one on the data", file=sys.stderr, flush=True)
        router = train_learned([row for file_rows in rows.values() for row in file_rows])
    else:
        router = LearnedRouter.load(args.artifact)
    calibration = router.calibration
    if calibration is None:
        parser.error(f"{args.artifact} has no calibration table")
    scores = {
        name: [float(s) for s in router.score_batch([row.messages for row in file_rows])]
        for name, file_rows in rows.items()
    }
    mixes = {"all": [s for file_scores in scores.values() for s in file_scores], **scores}
    report: dict[str, Any] = {}
    for budget in budgets:
        calibrated = calibration.threshold(max_strong_share=budget)
        for name, mix in mixes.items():
            shuffled = random.Random(args.seed).sample(mix, len(mix))
            traffic = TrafficCalibration()
            served = [s >= traffic.cap_for(s, budget, calibrated) for s in shuffled]
            report[f"{budget:g} {name}"] = {
                "rows": len(mix),
                "calibrated_alone": round(sum(s >= calibrated for s in mix) / len(mix), 4),
                "served": round(sum(served) / len(mix), 4),
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
