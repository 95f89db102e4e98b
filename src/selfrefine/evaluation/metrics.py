"""Evaluation metrics: source-separation SDR and multi-label stem classification scores.

Separation metrics take sources stacked on axis 0, i.e. ``(sources, channels, samples)`` arrays,
and return one value per source in dB. Classification metrics take ``(examples, classes)``
boolean label matrices. Everything is numpy in, numpy (or plain Python numbers) out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

SDR_EPS = 1e-7
"""Stabiliser added to numerator and denominator of :func:`global_sdr` (as in the SDX'23 code)."""

DEFAULT_THRESHOLD_GRID = np.round(np.arange(1, 20) * 0.05, 2)
"""Thresholds 0.05, 0.10, ..., 0.95 searched by :func:`f1_optimal_thresholds` by default."""


def _check_separation_pair(reference: np.ndarray, estimate: np.ndarray) -> None:
    """Raise ValueError unless both arrays are ``(S, C, N)`` with equal shapes and N > 0."""
    if reference.ndim != 3 or reference.shape != estimate.shape:
        raise ValueError(
            f"reference and estimate must both be (sources, channels, samples); "
            f"got {reference.shape} and {estimate.shape}"
        )
    if reference.shape[2] == 0:
        raise ValueError("reference and estimate have 0 samples")


def _check_label_pair(y_true: np.ndarray, other: np.ndarray, name: str) -> None:
    """Raise ValueError unless ``y_true`` and ``other`` are equal-shaped ``(N, K)`` matrices."""
    if y_true.ndim != 2 or y_true.shape != other.shape:
        raise ValueError(f"y_true and {name} must both be (examples, classes); got {y_true.shape} and {other.shape}")


def _any_source_silent(sources: np.ndarray) -> bool:
    """museval's silence test on ``(S, C, N)``: some source whose channel sum is 0 at every sample."""
    return bool(np.any(np.all(np.sum(sources, axis=1) == 0, axis=1)))


def _nan_quiet(func: Callable[..., np.ndarray], values: np.ndarray, axis: int) -> np.ndarray:
    """Apply a numpy nan-reduction without its warning for all-NaN slices (they give NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(values, axis=axis)


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) elementwise, 0 where the denominator is 0 (sklearn zero_division=0)."""
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise for non-negative counts, 0 where ``den`` is 0."""
    return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Global SDR of the SDX'23 / MDX challenges, one value per source.

    ``10 * log10((eps + sum ref^2) / (eps + sum (ref - est)^2))`` with the sums over channels and
    time and ``eps = 1e-7``, so a perfect estimate is large but finite and a silent reference
    gives a finite (very negative unless the estimate is silent too) value.

    Args:
        reference: ``(S, C, N)`` true sources.
        estimate: ``(S, C, N)`` estimated sources.

    Returns:
        ``(S,)`` float64 SDR in dB.

    Raises:
        ValueError: shapes differ or are not ``(S, C, N)`` with N > 0.
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    _check_separation_pair(reference, estimate)
    num = np.sum(np.square(reference), axis=(1, 2)) + SDR_EPS
    den = np.sum(np.square(reference - estimate), axis=(1, 2)) + SDR_EPS
    return 10.0 * np.log10(num / den)


def bsseval_sdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """BSSEval v4 SDR (museval), the SiSEC 2018 / MUSDB18 convention, one value per source.

    Runs ``museval.evaluate`` (mode v4, time-invariant distortion filters) with 1 s windows and
    a 1 s hop, then takes per source the median over frames, ignoring the NaN frames museval
    emits where any reference or estimate source is silent. A source silent throughout (which
    ``museval.evaluate`` refuses with an error) makes every frame NaN under that same rule, so
    then every source is NaN.

    Args:
        reference: ``(S, C, N)`` true sources, evaluated jointly (interference is measured against
            all of them, so a source's score depends on the others).
        estimate: ``(S, C, N)`` estimated sources.
        sample_rate: samples per second, which is the window and hop length.

    Returns:
        ``(S,)`` float64 median frame SDR in dB; NaN for a source whose frames are all NaN.

    Raises:
        ValueError: shapes differ or are not ``(S, C, N)`` with N > 0, or ``sample_rate <= 0``.
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    _check_separation_pair(reference, estimate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if _any_source_silent(reference) or _any_source_silent(estimate):
        return np.full(reference.shape[0], np.nan)
    import museval  # here, not at the top: its import (musdb, stempeg probing ffmpeg) costs a stage 1-2 s

    sdr, _isr, _sir, _sar = museval.evaluate(
        reference.transpose(0, 2, 1),
        estimate.transpose(0, 2, 1),
        win=int(sample_rate),
        hop=int(sample_rate),
        mode="v4",
    )
    return _nan_quiet(np.nanmedian, np.asarray(sdr, dtype=np.float64), axis=1)


def summarize_tracks(per_track: np.ndarray, sources: list[str]) -> dict:
    """Aggregate per-track, per-source scores across tracks.

    NaN entries (e.g. a source silent in a whole track) are skipped per source. The
    ``mean_over_sources`` entry averages the per-source statistics; it is NaN when some source
    has no finite value in any track, so averages over different source sets never mix.

    Args:
        per_track: ``(tracks, S)`` scores, one row per track.
        sources: the ``S`` source names, in column order.

    Returns:
        ``{"median": {src: v, ..., "mean_over_sources": v}, "mean": {...}}`` with plain floats:
        the across-track median (resp. mean) per source, and the mean of those over sources.

    Raises:
        ValueError: ``per_track`` is not 2-D or its column count differs from ``len(sources)``.
    """
    per_track = np.asarray(per_track, dtype=np.float64)
    if per_track.ndim != 2 or per_track.shape[1] != len(sources):
        raise ValueError(f"per_track must be (tracks, {len(sources)}); got {per_track.shape}")
    summary: dict[str, dict[str, float]] = {}
    for name, reduce in (("median", np.nanmedian), ("mean", np.nanmean)):
        per_source = _nan_quiet(reduce, per_track, axis=0)
        stats = {src: float(v) for src, v in zip(sources, per_source)}
        stats["mean_over_sources"] = float(np.mean(per_source))
        summary[name] = stats
    return summary


def multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Multi-label classification scores (which stems a clip contains).

    Precision, recall and F1 are 0 where undefined (no predicted positives, no true positives,
    or neither), like scikit-learn with ``zero_division=0``.

    Args:
        y_true: ``(N, K)`` bool true labels.
        y_pred: ``(N, K)`` bool predicted labels.
        classes: the ``K`` class names, in column order.

    Returns:
        ``{"exact_match", "label_accuracy", "macro_f1", "micro_f1", "per_class"}``: the fraction of
        rows with every label right, the mean per-label (1 - Hamming loss) accuracy, the mean of
        per-class F1, F1 of the pooled counts, and ``{cls: {"precision", "recall", "f1",
        "accuracy", "support"}}`` with ``support`` the number of examples truly in the class (int).

    Raises:
        ValueError: shapes differ, are not ``(N, K)``, or K differs from ``len(classes)``.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    _check_label_pair(y_true, y_pred, "y_pred")
    if y_true.shape[1] != len(classes):
        raise ValueError(f"got {y_true.shape[1]} label columns for {len(classes)} classes")
    tp = np.sum(y_true & y_pred, axis=0)
    fp = np.sum(~y_true & y_pred, axis=0)
    fn = np.sum(y_true & ~y_pred, axis=0)
    correct = y_true == y_pred
    precision = _safe_ratio(tp, tp + fp)
    recall = _safe_ratio(tp, tp + fn)
    f1 = _f1_from_counts(tp, fp, fn)
    accuracy = np.mean(correct, axis=0)
    per_class = {
        cls: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "accuracy": float(accuracy[k]),
            "support": int(tp[k] + fn[k]),
        }
        for k, cls in enumerate(classes)
    }
    return {
        "exact_match": float(np.mean(np.all(correct, axis=1))),
        "label_accuracy": float(np.mean(correct)),
        "macro_f1": float(np.mean(f1)),
        "micro_f1": float(_f1_from_counts(tp.sum(), fp.sum(), fn.sum())),
        "per_class": per_class,
    }


def f1_optimal_thresholds(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-class decision threshold maximising F1 on the given examples.

    A label is predicted where ``probs >= threshold``. Among thresholds with equal F1 the higher
    one wins (fewer false alarms for the same score).

    Args:
        y_true: ``(N, K)`` bool true labels.
        probs: ``(N, K)`` float predicted probabilities.
        grid: ``(T,)`` candidate thresholds; default 0.05, 0.10, ..., 0.95.

    Returns:
        ``(K,)`` float64 thresholds, each taken from ``grid``.

    Raises:
        ValueError: shapes differ or are not ``(N, K)``, or ``grid`` is not a non-empty 1-D array.
    """
    y_true = np.asarray(y_true, dtype=bool)
    probs = np.asarray(probs, dtype=np.float64)
    _check_label_pair(y_true, probs, "probs")
    grid = np.sort(np.asarray(DEFAULT_THRESHOLD_GRID if grid is None else grid, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D array; got shape {grid.shape}")
    pred = probs[None, :, :] >= grid[:, None, None]  # (T, N, K)
    truth = y_true[None, :, :]
    tp = np.sum(pred & truth, axis=1)
    fp = np.sum(pred & ~truth, axis=1)
    fn = np.sum(~pred & truth, axis=1)
    f1 = _f1_from_counts(tp, fp, fn)  # (T, K), grid ascending
    best_from_top = np.argmax(f1[::-1], axis=0)  # first maximum from the top = highest tied threshold
    return grid[grid.size - 1 - best_from_top]


def calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of multi-label probabilities, all labels pooled.

    Each probability is put in one of ``bins`` equal-width bins; the error is the bin-size-weighted
    mean of ``|mean probability - fraction of true labels|`` over the bins.

    Args:
        y_true: ``(N, K)`` bool targets.
        probs: ``(N, K)`` probabilities.
        bins: number of bins on [0, 1].

    Returns:
        ECE in [0, 1]; 0 for a perfectly calibrated model.
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and probs must have the same shape; got {np.shape(y_true)} and {np.shape(probs)}")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(p[members].mean() - y[members].mean())
    return float(error)
