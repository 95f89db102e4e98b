"""Benchmark: cost of BSSEval v4 SDR (museval) against the SDX'23 global SDR.

Generates seeded synthetic songs of four sources (enveloped tones plus hiss) with estimates that
leak 20 % of a neighbouring source and add white noise, scores each song with
:func:`selfrefine.metrics.bsseval_sdr` and :func:`selfrefine.metrics.global_sdr`, and writes the
wall-clock times, the settings, the score summaries and machine info as JSON::

    python benchmarks/evaluation.py --out benchmarks/results/evaluation.json \\
        --songs 10 --seconds 8 --sample-rate 16000 --channels 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.evaluation.metrics import bsseval_sdr, global_sdr, summarize_tracks
from selfrefine.outputs import write_json

from common import machine_info


def make_song(
    rng: np.random.Generator, seconds: float, sample_rate: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic song.

    Args:
        rng: random generator (advanced in place).
        seconds: duration.
        sample_rate: samples per second.
        channels: channel count.

    Returns:
        ``(reference, estimate)``, each ``(len(CLASSES), channels, samples)`` float64.
    """
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    reference = np.empty((len(CLASSES), channels, n))
    for s in range(len(CLASSES)):
        freqs = rng.uniform(60, min(2000, sample_rate / 4), size=3)
        tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
        envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 2) * t))
        for c in range(channels):
            reference[s, c] = envelope * tone * rng.uniform(0.5, 1) + 0.05 * rng.standard_normal(n)
    estimate = reference + 0.2 * np.roll(reference, 1, axis=0) + 0.1 * rng.standard_normal(reference.shape)
    return reference, estimate


def time_metric(
    songs: list[tuple[np.ndarray, np.ndarray]],
    metric: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[list[float], np.ndarray]:
    """Score every song with ``metric(reference, estimate)``.

    Args:
        songs: ``(reference, estimate)`` pairs.
        metric: callable returning ``(S,)`` scores.

    Returns:
        Per-song wall-clock seconds and the ``(songs, S)`` scores.
    """
    seconds, scores = [], []
    for reference, estimate in songs:
        start = time.perf_counter()
        scores.append(metric(reference, estimate))
        seconds.append(time.perf_counter() - start)
    return seconds, np.stack(scores)


def main() -> None:
    """Parse arguments, run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluation.json"))
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.songs < 1 or args.seconds <= 0 or args.sample_rate <= 0 or args.channels < 1:
        parser.error("--songs, --seconds, --sample-rate and --channels must be positive")

    rng = np.random.default_rng(args.seed)
    songs = [make_song(rng, args.seconds, args.sample_rate, args.channels) for _ in range(args.songs)]
    bsseval_sdr(*songs[0], args.sample_rate)  # warm-up, untimed: first-call costs are not per-song work
    results = {}
    for name, metric in (
        ("bsseval_sdr", lambda ref, est: bsseval_sdr(ref, est, args.sample_rate)),
        ("global_sdr", global_sdr),
    ):
        seconds, scores = time_metric(songs, metric)
        results[name] = {
            "seconds_total": sum(seconds),
            "seconds_per_song": sum(seconds) / len(seconds),
            "seconds_per_song_each": seconds,
            "sdr_summary": summarize_tracks(scores, list(CLASSES)),
        }
    results["bsseval_over_global_time"] = (
        results["bsseval_sdr"]["seconds_total"] / results["global_sdr"]["seconds_total"]
    )

    report = {
        "settings": {
            "songs": args.songs,
            "seconds": args.seconds,
            "sample_rate": args.sample_rate,
            "channels": args.channels,
            "sources": list(CLASSES),
            "seed": args.seed,
            "bsseval": "museval v4, 1 s window, 1 s hop, median over frames",
        },
        "results": results,
        "machine": machine_info(),
    }
    write_json(args.out, report)
    print(
        f"{args.songs} songs x {args.seconds:g} s @ {args.sample_rate} Hz, {args.channels} ch: "
        f"bsseval_sdr {results['bsseval_sdr']['seconds_total']:.3f} s "
        f"({results['bsseval_sdr']['seconds_per_song']:.3f} s/song), "
        f"global_sdr {results['global_sdr']['seconds_total']:.5f} s "
        f"({results['global_sdr']['seconds_per_song'] * 1e3:.3f} ms/song) -> {args.out}"
    )


if __name__ == "__main__":
    main()
