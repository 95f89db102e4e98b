"""Where each separator's estimates come from: per source, the correlation of the estimate with every clean target.

    python benchmarks/leakage.py                       # the committed run's estimates -> results/leakage.json
    python benchmarks/leakage.py --project ../sampled  # another clone's (e.g. the sampled world), same file

Reads the clean test songs (``data/index.csv``) and what ``evaluate@<model>`` wrote (``data/estimates/<model>/``),
and reports per model and source, averaged over songs: the estimate's level against its target's (dB), the
song's global SDR (SDX'23: ``10 log10(|s|² / |s - ŝ|²)``), and the normalised correlation of the estimate with each
target (first channel). A separator that leaves its estimate near silence scores near 0 dB with a low level; one
that leaks another source shows that source's correlation. Analysis only; the results file keeps one section per
world (``generate.engine``) and label table the separators were trained on (``<world>/<labels>``): to read an
experiment's, ``dvc exp apply`` it first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.config import load_params
from selfrefine.data.audio import read_audio
from selfrefine.data.index import evaluation_songs
from selfrefine.outputs import read_csv

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info

RESULTS = Path(__file__).parent / "results" / "leakage.json"


def leakage(project: Path, model: str, rate: int, channels: int) -> dict:
    """Per source of ``model``: mean estimate level (dB against the target), global SDR, and correlations."""
    songs = evaluation_songs(read_csv(project / "data" / "index.csv"))
    level, sdr, corr = ({c: [] for c in CLASSES} for _ in range(3))
    for song, stems in sorted(songs.items()):
        refs = {c: read_audio(project / stems[c], rate, channels)[0] for c in CLASSES}
        ests = {
            c: read_audio(project / "data/estimates" / model / song / f"{c}.wav", rate, channels)[0] for c in CLASSES
        }
        n = min(len(v) for v in [*refs.values(), *ests.values()])
        for c in CLASSES:
            r, e = refs[c][:n], ests[c][:n]
            er, ee = float(np.sum(r**2)) + 1e-9, float(np.sum(e**2)) + 1e-9
            level[c].append(10 * np.log10(ee / er))
            sdr[c].append(10 * np.log10(er / (float(np.sum((r - e) ** 2)) + 1e-9)))
            corr[c].append([float(np.dot(e, refs[d][:n])) / np.sqrt(ee * (float(np.sum(refs[d][:n] ** 2)) + 1e-9))
                            for d in CLASSES])  # fmt: skip
    return {
        c: {
            "level_db": round(float(np.mean(level[c])), 2),
            "global_sdr": round(float(np.mean(sdr[c])), 2),
            "correlation": dict(zip(CLASSES, np.round(np.mean(corr[c], axis=0), 3).tolist(), strict=True)),
        }
        for c in CLASSES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="a clone that ran dvc repro")
    parser.add_argument("--name", help="the results section (default: <world>/<separate.labels>)")
    args = parser.parse_args()
    params = load_params(args.project / "params.yaml")
    world = params.generate.engine
    section = {
        "songs": len(evaluation_songs(read_csv(args.project / "data" / "index.csv"))),
        **{
            m: leakage(args.project, m, params.audio.sample_rate, params.audio.channels) for m in params.separate.models
        },
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    name = args.name or f"{world}/{params.separate.labels}"
    results[name] = section
    results["machine"] = machine_info()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    for m in params.separate.models:
        for c, v in section[m].items():
            print(
                f"{name} {m} {c}: level {v['level_db']:+.1f} dB, global SDR {v['global_sdr']:.2f}, {v['correlation']}"
            )


if __name__ == "__main__":
    main()
