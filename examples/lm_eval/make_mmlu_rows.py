"""Rows for mmlu_local.yaml: each routing row's question (it ends in "Answer:") and the index
of its reference letter. Writes JSONL to stdout; the rows are data, not kept in the repo."""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("routing_rows", help="e.g. ../shared/data/routing/mmlu_dev.jsonl")
    parser.add_argument("--rows", type=int, default=100, help="how many rows (from the top)")
    arguments = parser.parse_args()
    with open(arguments.routing_rows, encoding="utf-8") as rows:
        for number, line in enumerate(rows):
            if number >= arguments.rows:
                break
            row = json.loads(line)
            question = row["messages"][-1]["content"]
            answer = "ABCD".index(row["reference"])
            sys.stdout.write(json.dumps({"question": question, "answer": answer}) + "\n")


if __name__ == "__main__":
    main()
