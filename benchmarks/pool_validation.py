"""The pool options on noisy-label validation only: each compare run's separator validation SDR, per option.

    python benchmarks/pool_validation.py                    # -> results/pool_validation.json
    python benchmarks/pool_validation.py --against refined_2 --models demucs,xumx

Reads ``metrics/train/<model>.json`` of every experiment that ``selfrefine compare`` kept
(``metrics/compare/batch.json``), from DVC's cache. A separator's validation examples are mixed from the held-out
songs' ``single`` pools of its training table and are never ranked (:mod:`selfrefine.training.separation`), so
for one replicate (seed) the options that train on the same table (``refined_2`` with another ``separate.pool`` or
``separate.keep``) are scored on the same examples, by labels no clean table gave: this is the evidence the pool
defaults are chosen on. A table that changes which stems are labelled (``filtered_<model>``) validates on its
own held-out stems, so its validation SDR is listed but not set against the others. Per option: the mean over
replicates and, where the replicates pair with ``--against``'s, the mean paired difference and its range.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from selfrefine.experiments.queue import output

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info


def experiment_revs() -> dict[str, str]:
    """``{experiment name: commit}`` of every experiment ref in this repository."""
    refs = subprocess.run(
        ["git", "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return {line.split()[0].rsplit("/", 1)[-1]: line.split()[1] for line in refs if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", default="refined_2", help="the option the others are set against")
    parser.add_argument("--models", default="demucs,xumx")
    parser.add_argument("--batch", default="metrics/compare/batch.json")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "pool_validation.json"))
    args = parser.parse_args()
    experiments = json.loads(Path(args.batch).read_text())["experiments"]
    revs = experiment_revs()
    result: dict = {"validation": "held-out songs' single pools of each run's training table", "models": {}}
    for model in args.models.split(","):
        runs: dict[str, dict[int, dict]] = {}
        for key, name in experiments.items():
            condition, seed = key.rsplit("/seed", 1)
            if name not in revs:
                print(f"{key}: experiment {name} is not in this repository; skipped", file=sys.stderr)
                continue
            report = json.loads(output(revs[name], Path(f"metrics/train/{model}.json")))
            runs.setdefault(condition, {})[int(seed)] = {"labels": report["labels"], "pools": report["pools"],
                                                         "val_sdr": report["val_sdr"]}  # fmt: skip
        base = runs.get(args.against, {})
        rows = {}
        for condition, by_seed in sorted(runs.items()):
            sdr = [r["val_sdr"] for r in by_seed.values()]
            row = {
                "runs": len(sdr),
                "val_sdr": round(float(np.mean(sdr)), 4),
                "labels": next(iter(by_seed.values()))["labels"],
            }
            paired = [
                by_seed[s]["val_sdr"] - base[s]["val_sdr"]
                for s in sorted(by_seed)
                if s in base and by_seed[s]["labels"] == base[s]["labels"] and condition != args.against
            ]
            if paired:
                row.update(
                    {
                        f"minus_{args.against}": round(float(np.mean(paired)), 4),
                        "paired_runs": len(paired),
                        "range": [round(float(min(paired)), 4), round(float(max(paired)), 4)],
                    }  # fmt: skip
                )
            row["pools"] = {str(s): r["pools"] for s, r in sorted(by_seed.items())}
            rows[condition] = row
        result["models"][model] = rows
    result["machine"] = machine_info()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({m: {c: {k: v for k, v in r.items() if k != "pools"} for c, r in rows.items()}
                      for m, rows in result["models"].items()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
