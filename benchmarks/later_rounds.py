"""Round drift: what ``refine.later_rounds`` (relabel | average | confirm) does to round 2's label sets.

    python benchmarks/later_rounds.py          # after dvc repro -> benchmarks/results/later_rounds.json

Round 2's classifier is trained on round 1's table; the refine stage then relabels every stem with it. This
applies :func:`selfrefine.refine.later_round` (what ``refine@2`` runs) to the probabilities the committed run
wrote into ``data/labels/refined_1.csv`` and ``refined_2.csv`` (rounded there to 5 decimals) and scores each
variant against the generator's truth (``data/noisy/truth.csv``): label sets right, and the stems it changed
from round 1's sets, split into fixed (now right) and broken (right before). Analysis only: the truth is not
used to choose anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.config import load_params
from selfrefine.data.labels import parse_labels, read_label_table
from selfrefine.outputs import read_csv
from selfrefine.refine import later_round

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info

RESULTS = Path(__file__).parent / "results" / "later_rounds.json"
VARIANTS = [("relabel", None), ("average", None), *[("confirm", c) for c in (0.6, 0.7, 0.8, 0.9)]]


def _probs(path: str) -> np.ndarray:
    return np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in read_csv(path)])


def main() -> None:
    params = load_params("params.yaml")
    if params.refine.threshold == "adaptive":
        raise SystemExit("refine.threshold: adaptive needs the validation probabilities; run with a fixed threshold")
    first = read_label_table("data/labels/refined_1.csv")
    p1, p2 = _probs("data/labels/refined_1.csv"), _probs("data/labels/refined_2.csv")
    known = {(r["song"], r["stem"]): parse_labels(r["truth"]) for r in read_csv("data/noisy/truth.csv")}
    truth = [known[(s.song, s.stem)] for s in first]
    thresholds = np.full(len(CLASSES), float(params.refine.threshold))

    def score(stems: list) -> dict:
        changed = [(a.labels, b.labels, t) for a, b, t in zip(stems, first, truth, strict=True) if a.labels != b.labels]
        return {
            "labels_right": round(float(np.mean([s.labels == t for s, t in zip(stems, truth, strict=True)])), 4),
            "changed": len(changed),
            "fixed": sum(new == t for new, _, t in changed),
            "broken": sum(old == t for _, old, t in changed),
        }

    rows = {"round 1": score(first)}
    for mode, confirm in VARIANTS:
        stems, _ = later_round(first, p2, p1, thresholds, mode, confirm or params.refine.confirm)
        rows[f"round 2, {mode}" + (f" {confirm}" if confirm else "")] = score(stems)
    report = {"threshold": params.refine.threshold, "stems": len(first), "variants": rows, "machine": machine_info()}
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    for name, row in rows.items():
        print(f"{name}: {json.dumps(row)}")


if __name__ == "__main__":
    main()
