"""Generate a fresh PII evaluation set with presidio-research's own generator, in the schema of
../shared/data/pii (the development set was made by an earlier version of the same generator).

The guard is also judged on data it has never seen; a set with new fake names, places and
numbers, from the same templates, shows whether a rule learnt values instead of forms.

    python3 -m venv /tmp/pev && /tmp/pev/bin/pip install presidio-evaluator==0.3.2
    /tmp/pev/bin/python -m benchmarks.privacy_fresh_data --seed 1 --out /tmp/fresh1.json
    .venv/bin/smallfirst privacy eval --data /tmp/fresh1.json

presidio-evaluator pulls transformers, plotly and pandas, so it lives in its own venv, not in
the project's. Its template file writes line breaks out as a backslash and "n"; the
development set has real line breaks, which this script restores unless `--keep-escapes`.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--keep-escapes", action="store_true", help="keep the templates' written-out line breaks"
    )
    args = parser.parse_args()

    from presidio_evaluator.data_generator import (  # type: ignore[import-not-found]
        PresidioSentenceFaker,
        presidio_templates_file_path,
    )

    lines = presidio_templates_file_path.read_text(encoding="utf-8").splitlines()
    templates = [line.strip() for line in lines if line.strip()]
    if not args.keep_escapes:
        templates = [template.replace("\\n", "\n") for template in templates]
    random.seed(args.seed)
    faker = PresidioSentenceFaker(
        locale="en_US", lower_case_ratio=0.05, random_seed=args.seed, sentence_templates=templates
    )
    rows = [
        {
            "full_text": record.full_text,
            "masked": record.masked,
            "spans": [
                {
                    "entity_type": span.entity_type,
                    "entity_value": span.entity_value,
                    "start_position": span.start_position,
                    "end_position": span.end_position,
                }
                for span in record.spans
            ],
            "template_id": record.template_id,
            "metadata": None,
        }
        for record in faker.generate_new_fake_sentences(args.samples)
    ]
    args.out.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    types = Counter(span["entity_type"] for row in rows for span in row["spans"])
    print(f"{len(rows)} samples -> {args.out}; spans per type: {dict(types.most_common())}")


if __name__ == "__main__":
    main()
