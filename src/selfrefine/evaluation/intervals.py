"""Confidence intervals for separator comparisons: a paired, hierarchical bootstrap over runs and songs.

The unit of replication is the training run (a seed): two identically configured runs differ by more than
their songs' spread suggests, so an interval over the songs of one run is too narrow. Each bootstrap
replicate draws the seeds with replacement and then, within each drawn seed, the songs with replacement
(the two levels of the hierarchy); every condition (label table) of a model is evaluated on the *same*
draw, so differences are paired by seed and song. A condition's score is the mean over seeds and songs of
the per-song global SDR (mean over sources). Intervals are percentile intervals of the replicates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

LEVEL = 0.95


def interval(point: float, replicates: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """``{"mean", "ci_low", "ci_high"}``: the point estimate and the percentile interval of ``replicates``."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates[np.isfinite(replicates)], [tail, 100 - tail])
    return {"mean": float(point), "ci_low": float(low), "ci_high": float(high)}


def bootstrap_means(
    scores: Mapping[str, np.ndarray], replicates: int = 10000, seed: int = 0
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Paired hierarchical bootstrap of the mean score of each condition.

    Args:
        scores: ``{condition: (seeds, songs) array}``, every condition with the same seeds and songs in the
            same order (seed ``i`` and song ``j`` mean the same thing in every condition).
        replicates: bootstrap replicates.
        seed: the bootstrap's own random seed (the intervals are reproducible).

    Returns:
        (points, draws): each condition's mean over seeds and songs, and its ``(replicates,)`` bootstrap means.
    """
    shapes = {np.shape(v) for v in scores.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every condition needs the same (seeds, songs) scores; got shapes {sorted(shapes)}")
    n_seeds, n_songs = next(iter(shapes))
    rng = np.random.default_rng(seed)
    seeds = rng.integers(n_seeds, size=(replicates, n_seeds))
    songs = rng.integers(n_songs, size=(replicates, n_seeds, n_songs))
    points = {name: float(np.mean(v)) for name, v in scores.items()}
    draws = {name: np.asarray(v)[seeds[:, :, None], songs].mean(axis=(1, 2)) for name, v in scores.items()}
    return points, draws


def gap_closed(noisy: np.ndarray | float, refined: np.ndarray | float, clean: np.ndarray | float):
    """Share of the noisy -> clean gap that ``refined`` closes (elementwise; NaN where there is no gap)."""
    gap = np.asarray(clean, dtype=float) - np.asarray(noisy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(gap) > 1e-9, (np.asarray(refined) - np.asarray(noisy)) / gap, np.nan)


def compare_conditions(
    scores: Mapping[str, np.ndarray], refined: list[str], replicates: int = 10000, seed: int = 0
) -> dict:
    """Every condition's mean with its interval; each refined table against noisy and as a share of the gap.

    Args:
        scores: ``{label table: (seeds, songs)}`` per-song global SDR, with ``noisy`` among them.
        refined: the tables to set against ``noisy`` (and, when ``clean`` is there, against the gap).

    Returns:
        ``{table: {"mean", "ci_low", "ci_high"}, ..., "differences": {table: {"minus_noisy": {...},
        "minus_clean": {...}, "gap_closed": {...}}}}`` (the last two only with ``clean``).
    """
    points, draws = bootstrap_means(scores, replicates, seed)
    out: dict = {name: interval(points[name], draws[name]) for name in scores}
    out["differences"] = {}
    for name in refined:
        diff = {"minus_noisy": interval(points[name] - points["noisy"], draws[name] - draws["noisy"])}
        if "clean" in scores:
            diff["minus_clean"] = interval(points[name] - points["clean"], draws[name] - draws["clean"])
            diff["gap_closed"] = interval(
                float(gap_closed(points["noisy"], points[name], points["clean"])),
                gap_closed(draws["noisy"], draws[name], draws["clean"]),
            )
        out["differences"][name] = diff
    if "clean" in scores:
        out["clean_minus_noisy"] = interval(points["clean"] - points["noisy"], draws["clean"] - draws["noisy"])
    return out
