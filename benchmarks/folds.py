"""Study: in-sample vs out-of-fold refinement (``refine.folds``), label quality per round and its cost.

For each ``k`` of ``--folds`` it runs the refinement rounds as a DVC experiment (``dvc exp run --temp -n
folds<k> -S refine.folds=<k> refine@2 refine@clean``; an experiment of that name already in the repository
is reused, and ``k`` equal to the committed ``refine.folds`` is read from the committed run), then writes
per round: label accuracy before and after, detection precision and recall of the corrupted stems, clean
stems wrongly changed, the classifier's exact match on clean test mixtures, the classify stage's wall time,
and the commonest wrong label sets (true -> refined) read from the refined tables in DVC's cache::

    python benchmarks/folds.py --folds 1 2 4 --out benchmarks/results/folds.json

Run it in the repository (venv active) with nothing else on the cores: the classify times are wall time.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
from collections import Counter
from pathlib import Path

import yaml

from selfrefine.config import load_params
from selfrefine.outputs import write_json

ROUNDS = ("1", "2", "clean")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def _experiment(name: str) -> str | None:
    refs = _git("for-each-ref", "--format=%(refname)", "refs/exps").split()
    return next((r for r in refs if r.rsplit("/", 1)[-1] == name), None)


def _cached(rev: str, path: str, member: str | None = None) -> str:
    """A DVC-tracked file (or a file ``member`` of a tracked folder) as of ``rev``, from the local cache."""
    lock = yaml.safe_load(_git("show", f"{rev}:dvc.lock"))["stages"]
    md5 = next(o["md5"] for s in lock.values() for o in s.get("outs", []) if o["path"] == path)
    blob = Path(".dvc/cache/files/md5") / md5[:2] / md5[2:]
    if member is not None:
        md5 = next(e["md5"] for e in json.loads(blob.read_text()) if e["relpath"] == member)
        blob = Path(".dvc/cache/files/md5") / md5[:2] / md5[2:]
    return blob.read_text()


def _errors(rev: str, truth: dict) -> dict[str, list]:
    out = {}
    for r in ROUNDS:
        table = f"data/labels/refined_{r}.csv"
        rows = csv.DictReader(io.StringIO(_cached(rev, table)))
        wrong = Counter(
            f"{truth[(x['song'], x['stem'])] or 'none'} -> {x['labels'] or 'none'}"
            for x in rows
            if x["labels"] != truth[(x["song"], x["stem"])]
        )
        out[r] = wrong.most_common(4)
    return out


def measure(rev: str) -> dict:
    truth_rows = csv.DictReader(io.StringIO(_cached(rev, "data/noisy", "truth.csv")))
    truth = {(r["song"], r["stem"]): r["truth"] for r in truth_rows}
    rounds = {}
    for r in ROUNDS:
        refine = json.loads(_git("show", f"{rev}:metrics/refine/{r}.json"))
        classifier = json.loads(_git("show", f"{rev}:metrics/classifier/{r}.json"))
        timing = json.loads(_git("show", f"{rev}:timings/classify_{r}.json"))
        rounds[r] = {
            "label_accuracy_input": refine["label_accuracy_input"],
            "label_accuracy_refined": refine["label_accuracy_refined"],
            "detection_precision": refine["detection"]["precision"],
            "detection_recall": refine["detection"]["recall"],
            "clean_wrongly_changed": refine["clean_wrongly_changed"],
            "classifier_exact_match": classifier["test_clean_mixtures"]["exact_match"],
            "classify_seconds": timing["seconds"],
        }
    errors = _errors(rev, truth)
    for r in ROUNDS:
        rounds[r]["commonest_errors"] = errors[r]
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/folds.json"))
    args = parser.parse_args()
    committed = load_params().refine.folds
    results = {}
    for k in args.folds:
        if k == committed:
            rev = "HEAD"
        else:
            rev = _experiment(f"folds{k}")
            if rev is None:
                subprocess.run(
                    [
                        "dvc",
                        "exp",
                        "run",
                        "--temp",
                        "-n",
                        f"folds{k}",
                        "-S",
                        f"refine.folds={k}",
                        "refine@2",
                        "refine@clean",
                    ],
                    check=True,
                )
                rev = _experiment(f"folds{k}")
        results[str(k)] = {"revision": _git("rev-parse", rev).strip(), "rounds": measure(rev)}
        for r, m in results[str(k)]["rounds"].items():
            print(
                f"k={k} round {r}: {m['label_accuracy_input']:.3f} -> {m['label_accuracy_refined']:.3f}, "
                f"P {m['detection_precision']:.3f} R {m['detection_recall']:.3f}, "
                f"exact {m['classifier_exact_match']:.3f}, classify {m['classify_seconds']:.0f} s"
            )
    write_json(args.out, {"study": "refine.folds", "folds": results})


if __name__ == "__main__":
    main()
