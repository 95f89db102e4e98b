"""Coverage of nominal 95 % intervals on crossed runs x songs tables: the method in use against the ones before.

Simulates difference tables ``d[r, s] = 0.5 + a[r] + b[s] + e[r, s]`` with known variance components (two sets
measured on the kept Demucs scores, one with a ten times larger run variance than measured, as replicating the
whole pipeline may give, and one without run variance) and counts how often each method's interval holds 0.5:

- ``cochran-cox``: :func:`selfrefine.evaluation.intervals.mean_interval` (what compare and the studies use);
- ``satterthwaite``: the same variance estimate with Satterthwaite's pooled degrees of freedom (tried first);
- ``bootstrap``: the paired hierarchical percentile bootstrap used before (runs with replacement, then songs
  with replacement within each drawn run), with ``--replicates`` replicates.

Also the coverage of the Fieller interval of the share of the gap closed. Writes
``benchmarks/results/coverage.json``. Run: ``python benchmarks/coverage.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import stats

from selfrefine.evaluation.intervals import _mean_squares, mean_interval, simulate_coverage, simulate_gap_coverage
from selfrefine.outputs import write_json

from common import machine_info

SCENARIOS = {
    "measured": {"run": 0.0053, "song": 0.0156, "residual": 0.0311},  # Demucs refined_2 - clean, separator seeds
    "measured-gain": {"run": 0.0059, "song": 0.173, "residual": 0.0216},  # Demucs refined_2 - noisy
    "run-heavy": {"run": 0.05, "song": 0.0156, "residual": 0.0311},
    "no-run": {"run": 0.0, "song": 0.0156, "residual": 0.0311},
}


def satterthwaite(table: np.ndarray) -> dict:
    r, s = table.shape
    run, song, res = _mean_squares(table, table)
    combined = max(run + song - res, 1e-12)
    df = combined**2 / (run**2 / (r - 1) + song**2 / (s - 1) + res**2 / ((r - 1) * (s - 1)))
    half = float(stats.t.ppf(0.975, df)) * np.sqrt(combined / (r * s))
    return {"ci_low": table.mean() - half, "ci_high": table.mean() + half}


def bootstrap(replicates: int):
    rng = np.random.default_rng(0)

    def method(table: np.ndarray) -> dict:
        r, s = table.shape
        runs = rng.integers(r, size=(replicates, r))
        songs = rng.integers(s, size=(replicates, r, s))
        draws = table[runs[:, :, None], songs].mean(axis=(1, 2))
        low, high = np.percentile(draws, [2.5, 97.5])
        return {"ci_low": low, "ci_high": high}

    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--bootstrap-trials", type=int, default=400)
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "coverage.json")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = []
    for name, components in SCENARIOS.items():
        for runs in (2, 3, 5):
            for songs in (30, 100):
                row = {"scenario": name, "components": components, "runs": runs, "songs": songs}
                seed = 1000 * runs + songs
                row["cochran-cox"] = simulate_coverage(mean_interval, runs, songs, components, args.trials, seed)
                row["satterthwaite"] = simulate_coverage(satterthwaite, runs, songs, components, args.trials, seed)
                row["bootstrap"] = simulate_coverage(
                    bootstrap(args.replicates), runs, songs, components, args.bootstrap_trials, seed
                )
                if name != "no-run":
                    row["gap_closed_fieller"], row["gap_closed_undefined"] = simulate_gap_coverage(
                        runs, songs, components, trials=args.trials // 2, seed=seed
                    )
                rows.append(row)
                print({k: v for k, v in row.items() if k != "components"}, flush=True)
    write_json(
        args.out,
        {
            "nominal": 0.95,
            "trials": {"analytic": args.trials, "bootstrap": args.bootstrap_trials, "gap": args.trials // 2},
            "bootstrap_replicates": args.replicates,
            "rows": rows,
            "min_coverage": {
                m: min(r[m] for r in rows if r["runs"] >= 3) for m in ("cochran-cox", "satterthwaite", "bootstrap")
            },
            "seconds": round(time.perf_counter() - began, 1),
            "machine": machine_info(),
        },
    )


if __name__ == "__main__":
    main()
