"""Benchmark: ``selfrefine separate`` on a long 44.1 kHz stereo song, time, peak memory and how the stems add up.

Renders one generated song of ``--seconds`` s (default 180) at 44.1 kHz stereo with the embedded default's
generator (seed outside the training and test sets), writes its mixture as a WAV, and runs
``selfrefine separate`` on it once per trained separator, as a child process, with and without
``--consistent``. Records per run the wall time, the child's peak resident memory, how close the sum of the
written stems is to the input (SNR, full band and the model's band) and each stem's global SDR against the
song's true stems::

    python benchmarks/separate.py --models models/demucs/model.pt models/xumx/model.pt \
        --out benchmarks/results/separate.json

Needs GNU time at ``/usr/bin/time`` (Debian: ``apt-get install time``) for the peak memory of each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from selfrefine import CLASSES
from selfrefine.data.synth import synthesize_song
from selfrefine.evaluation.metrics import global_sdr
from selfrefine.outputs import write_json

from common import machine_info


def run_once(mixture: Path, model: Path, out: Path, consistent: bool) -> dict:
    """One ``selfrefine separate`` child: its wall time, peak RSS and the JSON line it logs."""
    command = [sys.executable, "-m", "selfrefine.cli", "separate", str(mixture), "--model", str(model)]
    command += ["--out", str(out), "--consistent" if consistent else "--no-consistent"]
    # GNU time measures its own child, which it forks while small: a child of this process would inherit
    # this process's peak RSS in ru_maxrss (Linux keeps the high-water mark across fork and exec).
    rss = out.parent / f"{out.name}.rss"
    began = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), *command], capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    snr = json.loads((out / "separate.json").read_text())[0]
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(int(rss.read_text().split()[-1]) / 1024, 1),
        "sum_snr_db": snr["sum_snr_db"],
        "sum_snr_band_db": snr["sum_snr_band_db"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, default=[Path("models/demucs/model.pt")])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/separate.json"))
    args = parser.parse_args()
    rate = 44100
    stems = synthesize_song(seed=987654, seconds=args.seconds, sample_rate=rate, channels=2)
    reference = np.stack([stems[c] for c in CLASSES])
    report: dict = {"machine": machine_info(), "song": {"seconds": args.seconds, "rate": rate, "channels": 2}}
    with tempfile.TemporaryDirectory() as tmp:
        mixture = Path(tmp) / "song.wav"
        sf.write(mixture, reference.sum(axis=0).T, rate, subtype="FLOAT")
        for model in args.models:
            for consistent in (False, True):
                out = Path(tmp) / f"{model.parent.name}_{consistent}"
                result = run_once(mixture, model, out, consistent)
                estimate = np.stack([sf.read(out / "song" / f"{c}.wav", always_2d=True)[0].T for c in CLASSES])
                result["global_sdr"] = dict(zip(CLASSES, np.round(global_sdr(reference, estimate), 2).tolist()))
                key = f"{model.parent.name}{' --consistent' if consistent else ''}"
                report[key] = result
                print(key, result, flush=True)
    write_json(args.out, report)


if __name__ == "__main__":
    main()
