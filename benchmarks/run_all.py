"""`make bench`: run every benchmark script in this folder, one after another (never in
parallel: they would measure each other). Each prints its own JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import refuse_arguments

HERE = Path(__file__).parent
# privacy_fresh_data.py writes an evaluation set, with presidio-evaluator from a venv of its
# own (its docstring): no benchmark, and `make bench` failed on it.
SKIP = {"run_all.py", "common.py", "__init__.py", "privacy_fresh_data.py"}


def main() -> int:
    refuse_arguments(__doc__)
    failures = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name in SKIP:
            continue
        module = f"benchmarks.{script.stem}"
        print(f"# {module}", flush=True)
        failures += subprocess.run([sys.executable, "-m", module], cwd=HERE.parent).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
