"""Queue workers side by side: one batch of experiments run with ``--jobs 1`` and with ``--jobs 2``.

    python benchmarks/jobs.py                 # -> benchmarks/results/jobs.json
    python benchmarks/jobs.py --steps 40 --seeds 2

Each run is ``selfrefine compare --labels noisy,clean --seeds N --vary separators`` in its own fresh copy of a
smoke project (the same committed run, so both batches train the same separators from the same data), with the
separators trained for ``--steps`` steps so that torch's threads, not DVC's start-up, dominate. Since the workers
of ``--jobs N`` get 1/N of the cores each (``OMP_NUM_THREADS``), ``--jobs 2`` should never be slower than
``--jobs 1``; ``--undivided`` also times ``--jobs 2`` with every worker on all cores (as before the division).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import drill_runs

from common import machine_info

RESULTS = Path(__file__).parent / "results" / "jobs.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="separator training steps")
    parser.add_argument("--seeds", type=int, default=2, help="runs per label table (experiments: 2 x seeds)")
    parser.add_argument("--undivided", action="store_true", help="also --jobs 2 with all cores per worker")
    args = parser.parse_args()
    train = {"steps": args.steps, "batch_size": 4, "segment_seconds": 2.0, "checkpoint_every": args.steps}
    runs = [("jobs 1", 1, {}), ("jobs 2", 2, {})]
    if args.undivided:
        runs.append(("jobs 2, undivided", 2, {"OMP_NUM_THREADS": str(os.cpu_count())}))
    results = {}
    with tempfile.TemporaryDirectory(prefix="jobs-") as work:
        cache = Path(work) / "stems"
        built = drill_runs.pristine(Path(work) / "built", cache)
        drill_runs.set_params(built, {"separate": {"pool": "named"}})
        params = yaml.safe_load((built / "params.yaml").read_text())
        for model in ("demucs", "xumx"):
            params["separators"][model]["train"].update(train)
        (built / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        drill_runs.sh(built, "git", "commit", "-qam", "longer separator training", cache=cache)
        drill_runs.sh(built, "dvc", "repro", cache=cache)
        drill_runs.sh(built, "git", "add", "-A", cache=cache)
        drill_runs.sh(built, "git", "commit", "-qm", "run", cache=cache)
        for name, jobs, extra in runs:
            project = Path(work) / name.replace(" ", "-").replace(",", "")
            shutil.copytree(built, project, symlinks=True)
            env = {**drill_runs.environ(project, cache), **extra}
            began = time.perf_counter()
            done = subprocess.run(
                ["selfrefine", "compare", "--poll", "2", "--labels", "noisy,clean", "--seeds", str(args.seeds)]
                + ["--vary", "separators", "--jobs", str(jobs)],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise SystemExit(f"{name}: compare failed:\n{done.stderr[-2000:]}")
            results[name] = {"jobs": jobs, "seconds": round(time.perf_counter() - began, 1), **extra}
            print(f"{name}: {results[name]['seconds']} s", flush=True)
    report = {
        "batch": f"compare --labels noisy,clean --seeds {args.seeds} --vary separators on the smoke profile, "
        f"separators trained {args.steps} steps",
        "experiments": 2 * args.seeds,
        "runs": results,
        "jobs2_over_jobs1": round(results["jobs 2"]["seconds"] / results["jobs 1"]["seconds"], 3),
        "machine": machine_info(),
    }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("experiments", "jobs2_over_jobs1")}))


if __name__ == "__main__":
    main()
