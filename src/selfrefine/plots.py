"""Plots: CSV tables that ``dvc plots`` renders (declared in dvc.yaml) and PNGs for people who open the folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfrefine import CLASSES
from selfrefine.outputs import atomic_path, write_csv


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as a PNG, atomically, and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _probability_panel(ax_row: np.ndarray, probs: np.ndarray, truth: list[frozenset[str]] | None) -> None:
    bins = np.linspace(0, 1, 21)
    for ax, (k, c) in zip(ax_row, enumerate(CLASSES)):
        if truth is None:
            ax.hist(probs[:, k], bins=bins, color="tab:gray")
        else:
            has = np.array([c in t for t in truth])
            ax.hist(
                [probs[has, k], probs[~has, k]],
                bins=bins,
                stacked=True,
                label=[f"holds {c}", f"no {c}"],
                color=["tab:green", "tab:red"],
            )
            ax.legend(fontsize=7)
        ax.set_title(f"p({c})")
        ax.set_yscale("log")


def probabilities_only(directory: Path, probs: np.ndarray) -> None:
    """Per-class probability histograms of a refinement without truth."""
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(14, 3))
    _probability_panel(axes, probs, None)
    save_figure(fig, directory / "probabilities.png")


def refinement(directory: Path, scores: dict, probs: np.ndarray, truth: list[frozenset[str]]) -> None:
    """Threshold sweep, refined-vs-true confusion and probability histograms of one refinement round.

    Args:
        directory: output folder (``sweep.csv`` and ``confusion.csv`` for dvc plots, PNGs).
        scores: :func:`selfrefine.refine.refinement_scores` output.
        probs: ``(stems, 4)`` class probabilities.
        truth: what each stem truly contains.
    """
    sweep = scores["sweep"]
    write_csv(directory / "sweep.csv", [dict(zip(sweep, values)) for values in zip(*sweep.values())], list(sweep))
    write_csv(directory / "confusion.csv", scores["confusion"], ["actual", "predicted"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, style in (("precision", "-o"), ("recall", "-s"), ("label_accuracy", "-^")):
        ax.plot(sweep["threshold"], sweep[key], style, ms=3, label=key.replace("_", " "))
    ax.set_xlabel("global threshold")
    ax.set_title("corrupted-stem detection and refined label accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, directory / "sweep.png")
    cats = sorted(
        {r["actual"] for r in scores["confusion"]} | {r["predicted"] for r in scores["confusion"]},
        key=lambda s: (s.count("+"), s),
    )
    matrix = np.zeros((len(cats), len(cats)), dtype=int)
    for r in scores["confusion"]:
        matrix[cats.index(r["actual"]), cats.index(r["predicted"])] += 1
    fig, ax = plt.subplots(figsize=(0.55 * len(cats) + 2, 0.55 * len(cats) + 1.5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cats)), cats, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(cats)), cats, fontsize=7)
    ax.set_xlabel("refined label set")
    ax.set_ylabel("true content")
    save_figure(fig, directory / "confusion.png")
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(14, 3))
    _probability_panel(axes, probs, truth)
    save_figure(fig, directory / "probabilities.png")


def training_curves(path: Path, history: list[dict[str, float]], title: str) -> None:
    """Train/validation loss (and validation SDR where logged) against step."""
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(steps, [h["train_loss"] for h in history], "-o", ms=3, label="train loss")
    ax.plot(steps, [h["val_loss"] for h in history], "-s", ms=3, label="validation loss")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if "val_sdr" in history[0]:
        twin = ax.twinx()
        twin.plot(steps, [h["val_sdr"] for h in history], "-^", ms=3, color="tab:green", label="validation SDR")
        twin.set_ylabel("dB")
        twin.legend(loc="center right", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    save_figure(fig, path)


def sdr_bars(path: Path, rows: list[dict], title: str) -> None:
    """Bars of one separator's SDR per source (``rows`` as written to sdr.csv)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["global_sdr"] for r in rows], 0.4, label="global SDR (mean over songs)")
    ax.bar(x + 0.2, [r["sdr"] for r in rows], 0.4, label="museval SDR (median over songs)")
    ax.set_xticks(x, [r["source"] for r in rows])
    ax.set_ylabel("dB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def filter_scores(
    path: Path, scores: np.ndarray, stems: list, truth: list[frozenset[str]] | None, threshold: float
) -> None:
    """Histograms of the filter's stem scores per labelled class (split by whether the label set is right, where
    the truth is known), with the threshold."""
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(14, 3), sharey=True)
    bins = np.linspace(
        np.nanmin(scores) if np.isfinite(scores).any() else -10,
        np.nanmax(scores) if np.isfinite(scores).any() else 30,
        30,
    )
    for ax, c in zip(axes, CLASSES):
        ids = [i for i, s in enumerate(stems) if c in s.labels and np.isfinite(scores[i])]
        if truth is None:
            ax.hist(scores[ids], bins=bins, color="tab:blue")
        else:
            right = [i for i in ids if stems[i].labels == truth[i]]
            wrong = [i for i in ids if stems[i].labels != truth[i]]
            ax.hist([scores[right], scores[wrong]], bins=bins, stacked=True, color=["tab:blue", "tab:red"],
                    label=["label set right", "label set wrong"])  # fmt: skip
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.set_title(f"labelled {c}")
        ax.set_xlabel("SDR of own estimate (dB)")
    if truth is not None:
        axes[0].legend(fontsize=7)
    save_figure(fig, path)
