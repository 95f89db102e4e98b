"""Benchmark: BSSEval v4 SDR, museval against :mod:`selfrefine.evaluation.bsseval`, time and agreement.

Times both on one song of ``--seconds`` s of 4 generated stereo sources at ``--sample-rate`` (a
separator-like estimate: each source low-passed, with 20 % leakage of the others and noise), on the CPU
and, where CUDA is present, on the GPU; and records the largest per-window difference from museval over
that song and the cases of ``tests/test_bsseval.py`` (random mono/stereo signals, a short last window,
a track shorter than a window, silent windows)::

    python benchmarks/sdr.py --out benchmarks/results/sdr.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import museval
import numpy as np
import torch
from scipy import signal

from selfrefine.data.synth import synthesize_song
from selfrefine.evaluation import bsseval
from selfrefine.outputs import write_json

from common import machine_info


def leaky_estimate(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    b, a = signal.butter(2, 0.3)
    estimate = signal.lfilter(b, a, reference, axis=-1) + 0.2 * (reference.sum(axis=0) - reference)
    return estimate + 0.01 * rng.standard_normal(reference.shape)


def museval_frames(reference: np.ndarray, estimate: np.ndarray, window: int) -> np.ndarray:
    frames, *_ = museval.evaluate(reference.transpose(0, 2, 1), estimate.transpose(0, 2, 1), win=window, hop=window)
    return np.asarray(frames, dtype=np.float64)


def max_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest |difference| over windows finite in both; inf if NaN/inf positions disagree."""
    same_nan = np.array_equal(np.isnan(ours), np.isnan(theirs)) and np.array_equal(np.isinf(ours), np.isinf(theirs))
    finite = np.isfinite(theirs)
    return float(np.max(np.abs(ours[finite] - theirs[finite]), initial=0.0)) if same_nan else float("inf")


def seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``repeats`` calls after one untimed warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sdr.json"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sr = args.sample_rate
    stems = synthesize_song(seed=1, seconds=args.seconds, sample_rate=sr, channels=2)
    reference = np.stack(list(stems.values())).astype(np.float64)
    estimate = leaky_estimate(reference, rng)

    began = time.perf_counter()
    theirs = museval_frames(reference, estimate, sr)
    museval_s = time.perf_counter() - began
    ours_cpu_s = seconds(lambda: bsseval.sdr(reference, estimate, sr, "cpu"), args.repeats)
    ours_gpu_s = None
    if torch.cuda.is_available():
        ref_gpu, est_gpu = (torch.from_numpy(x).cuda() for x in (reference, estimate))
        ours_gpu_s = seconds(lambda: bsseval.sdr(ref_gpu, est_gpu, sr), args.repeats, torch.cuda.synchronize)

    cases = {"song": (reference, estimate, sr)}
    small = 8000
    for channels in (1, 2):
        ref = rng.standard_normal((4, channels, 3 * small + 1234))
        cases[f"random_{channels}ch_short_last_window"] = (ref, leaky_estimate(ref, rng), small)
    ref = rng.standard_normal((3, 2, small // 2))
    cases["shorter_than_a_window"] = (ref, leaky_estimate(ref, rng), small)
    ref = rng.standard_normal((4, 2, 4 * small))
    est = leaky_estimate(ref, rng)
    ref[1, :, small : 2 * small] = 0
    est[3, :, 3 * small :] = 0
    cases["silent_windows"] = (ref, est, small)
    diffs = {
        name: max_diff(bsseval.sdr_frames(r, e, w, w), theirs if name == "song" else museval_frames(r, e, w))
        for name, (r, e, w) in cases.items()
    }

    report = {
        "settings": {"seconds": args.seconds, "sample_rate": sr, "channels": 2, "sources": 4, "repeats": args.repeats},
        "museval_cpu_s": round(museval_s, 3),
        "ours_cpu_s": round(ours_cpu_s, 4),
        "ours_gpu_s": None if ours_gpu_s is None else round(ours_gpu_s, 5),
        "speedup_cpu": round(museval_s / ours_cpu_s, 1),
        "speedup_gpu": None if ours_gpu_s is None else round(museval_s / ours_gpu_s, 1),
        "max_abs_diff_db": max(diffs.values()),
        "max_abs_diff_db_by_case": diffs,
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
    }
    write_json(args.out, report)
    print({k: v for k, v in report.items() if k not in ("machine", "settings")})


if __name__ == "__main__":
    main()
