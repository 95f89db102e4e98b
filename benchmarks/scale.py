"""Benchmark: peak memory and time of each stage on a small and a 4x larger dataset (44.1 kHz stereo).

Generates two datasets of the embedded generator at 44.1 kHz stereo (``--small`` and ``--large``
training songs of ``--seconds`` each, the same ``--test-songs``), runs the stages on each as
``dvc repro`` would (``python -m selfrefine.stages.<stage>`` in a scratch folder with its own
params file and stem cache), and records each stage's peak resident memory (``ru_maxrss`` of the
stage process, from ``os.wait4``) and wall time::

    python benchmarks/scale.py --out benchmarks/results/scale.json --small 8 --large 32 --seconds 20

Training steps are few (memory, not quality, is measured), so the figures are those of the data
path: indexing, stem metadata, mixing, fixed validation/test mixtures, refinement and separation of
every stem. ``rss_growth`` is large/small - 1 per stage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import selfrefine
from selfrefine.config import load_params, merge_into
from selfrefine.outputs import write_json

from common import machine_info

REPO = Path(__file__).resolve().parents[1]

STAGES = [
    ("generate", ["generate"]),
    ("index", ["index"]),
    ("corrupt", ["corrupt"]),
    ("classify", ["classify", "1", "noisy"]),
    ("refine", ["refine", "1", "noisy"]),
    ("train_demucs", ["train", "demucs"]),
    ("train_xumx", ["train", "xumx"]),
    ("evaluate", ["evaluate", "demucs"]),
]
"""(name in the report, stage module and arguments), in pipeline order."""


def settings(train_songs: int, test_songs: int, seconds: float) -> dict:
    """Overrides of ``params.yaml``: real-scale audio, a handful of training steps."""
    sep_train = {"steps": 6, "batch_size": 4, "segment_seconds": 4.0, "checkpoint_every": 3, "val_examples": 4}
    return {
        "audio": {"sample_rate": 44100, "channels": 2},
        "generate": {"train_songs": train_songs, "test_songs": test_songs, "seconds": seconds},
        "classifier": {
            "train": {
                "steps": 10,
                "batch_size": 8,
                "crop_seconds": 3.0,
                "val_mixtures": 64,
                "eval_every": 5,
                "test_mixtures": 64,
            }
        },
        "refine": {"hop_seconds": 6.0},
        "separate": {"labels": "noisy"},  # a 10-step classifier's labels would leave pools empty
        "separators": {"demucs": {"train": sep_train}, "xumx": {"train": sep_train}},
    }


def run_stages(folder: Path, overrides: dict) -> dict:
    """Run every stage of :data:`STAGES` in ``folder``; ``{stage: {"peak_rss_mb", "seconds"}}``."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    (folder / "params.yaml").write_text(yaml.safe_dump(merge_into(base, overrides), sort_keys=False))
    load_params(folder / "params.yaml")  # fails here, with one line, if the overrides are wrong
    env = {
        **os.environ,
        "SELFREFINE_CACHE": str(folder / "stem-cache"),
        "PYTHONPATH": str(Path(selfrefine.__file__).parents[1]),
    }
    report = {}
    for name, (module, *args) in STAGES:
        began = time.perf_counter()
        with open(folder / f"{name}.log", "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"selfrefine.stages.{module}", *args],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=log,
            )
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{name} failed; see {folder / (name + '.log')}:\n" + (folder / f"{name}.log").read_text())
        report[name] = {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1)}
        print(f"  {name}: {report[name]['peak_rss_mb']} MB, {report[name]['seconds']} s", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument("--small", type=int, default=8, help="training songs of the small dataset")
    parser.add_argument("--large", type=int, default=32, help="training songs of the large dataset")
    parser.add_argument("--test-songs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of every song")
    args = parser.parse_args()
    results = {}
    for size, songs in (("small", args.small), ("large", args.large)):
        print(f"{size}: {songs} training songs of {args.seconds} s", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"scale-{size}-") as tmp:
            results[size] = run_stages(Path(tmp), settings(songs, args.test_songs, args.seconds))
    float32_mb = lambda songs: songs * 4 * args.seconds * 44100 * 2 * 4 / 2**20  # noqa: E731
    report = {
        stage: {
            "small": {"songs": args.small, **results["small"][stage]},
            "large": {"songs": args.large, **results["large"][stage]},
            "rss_growth": round(results["large"][stage]["peak_rss_mb"] / results["small"][stage]["peak_rss_mb"] - 1, 3),
        }
        for stage, _ in STAGES
    }
    report["settings"] = {
        **settings(0, args.test_songs, args.seconds),
        "training_audio_float32_mb": {"small": round(float32_mb(args.small)), "large": round(float32_mb(args.large))},
    }
    report["settings"]["generate"].pop("train_songs")
    report["machine"] = machine_info()
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
