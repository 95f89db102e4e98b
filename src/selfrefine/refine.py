"""Refine: relabel every training stem with the classifier's prediction.

A stem's probability per class is aggregated over its non-silent crops (the classifier's training
crop length, hop ``refine.hop_seconds``): ``mean`` (default) averages the crops' sigmoid outputs,
``max`` takes the most confident crop. A stem with no frame above the silence level gets all
zeros (it contains nothing). Its refined label set holds every class whose probability reaches the
threshold: a fixed probability (the paper's 0.9, or 0.5), or ``adaptive``, a per-class threshold
that maximises F1 on the classifier's validation mixtures (drawn from the *noisy* pool, so no
clean data is used).

Scoring against the truth (generated or deliberately corrupted data only) is kept apart in
:func:`refinement_scores`; nothing in the relabelling needs it.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.labels import LabelledStem, format_labels
from selfrefine.data.stems import StemStore, frame_levels, loud_windows
from selfrefine.evaluation.metrics import f1_optimal_thresholds, multilabel_scores
from selfrefine.models.classifier import predict

log = logging.getLogger(__name__)

SWEEP = np.round(np.arange(0.05, 0.96, 0.05), 2)
"""Global thresholds at which the refinement is re-scored for the threshold plots."""


def class_thresholds(threshold: float | str, val_targets: np.ndarray, val_probs: np.ndarray) -> np.ndarray:
    """``(4,)`` per-class thresholds: the fixed one repeated, or F1-optimal on validation mixtures.

    Args:
        threshold: a probability or ``"adaptive"``.
        val_targets: ``(n, 4)`` bool, validation mixtures' targets (from the noisy pool's labels).
        val_probs: ``(n, 4)`` the classifier's probabilities on them.
    """
    if threshold == "adaptive":
        return f1_optimal_thresholds(val_targets, val_probs)
    return np.full(len(CLASSES), float(threshold))


def _aggregate(windows: np.ndarray, aggregate: str) -> np.ndarray:
    return windows.mean(axis=0) if aggregate == "mean" else windows.max(axis=0)


@torch.no_grad()
def stem_probabilities(
    model: nn.Module, store: StemStore, crop: int, hop: int, aggregate: str, batch_size: int = 64, chunk: int = 16
) -> np.ndarray:
    """``(stems, 4)`` class probabilities of every stem in ``store`` (see module docstring).

    Runs on the model's device, in batches of ``batch_size`` windows drawn across stems; while one chunk
    of ``chunk`` stems is classified, threads read the next, so a GPU is not left waiting on the disk.
    Memory holds two chunks of stems at most.
    """
    probs = np.zeros((len(store), len(CLASSES)), dtype=np.float32)
    loud = [i for i in range(len(store)) if not store.is_silent(i)]
    chunks = [loud[k : k + chunk] for k in range(0, len(loud), chunk)]
    with ThreadPoolExecutor(max_workers=min(4, chunk)) as pool:

        def read(ids: list[int]) -> list:
            return [pool.submit(store.windows, i, crop, hop) for i in ids]

        pending = read(chunks[0]) if chunks else []
        for n, ids in enumerate(chunks):
            windows = [f.result() for f in pending]
            pending = read(chunks[n + 1]) if n + 1 < len(chunks) else []
            out = predict(model, torch.from_numpy(np.concatenate(windows)), batch_size)
            for i, part in zip(ids, np.split(out, np.cumsum([len(w) for w in windows])[:-1])):
                probs[i] = _aggregate(part, aggregate)
            if (n + 1) % max(1, len(chunks) // 10) == 0 or n + 1 == len(chunks):
                log.info("refine: classified %d/%d loud stems", min((n + 1) * chunk, len(loud)), len(loud))
    return probs


@torch.no_grad()
def audio_probabilities(
    model: nn.Module, audio: np.ndarray, crop: int, hop: int, aggregate: str, silence_db: float, sample_rate: int
) -> np.ndarray:
    """``(4,)`` class probabilities of one ``(channels, samples)`` recording, as :func:`stem_probabilities`."""
    if np.all(frame_levels(audio, sample_rate // 4) < silence_db):
        return np.zeros(len(CLASSES), dtype=np.float32)
    return _aggregate(predict(model, torch.from_numpy(loud_windows(audio, crop, hop, silence_db))), aggregate)


def relabel(stems: list[LabelledStem], probs: np.ndarray, thresholds: np.ndarray) -> list[LabelledStem]:
    """New label sets: every class whose probability reaches its threshold."""
    return [
        LabelledStem(s.song, s.stem, s.path, frozenset(c for c, p, t in zip(CLASSES, row, thresholds) if p >= t))
        for s, row in zip(stems, probs, strict=True)
    ]


def confirm_changes(stems: list[LabelledStem], probs: np.ndarray, confirm: float) -> list[LabelledStem]:
    """``stems``' label sets, changed only where the classifier is sure: a class joins at a probability of at least
    ``confirm`` and leaves at ``1 - confirm`` or less (``refine.later_rounds: confirm``)."""
    return [
        LabelledStem(
            s.song,
            s.stem,
            s.path,
            frozenset(c for c, p in zip(CLASSES, row) if (p > 1 - confirm if c in s.labels else p >= confirm)),
        )
        for s, row in zip(stems, probs, strict=True)
    ]


def later_round(
    stems: list[LabelledStem], probs: np.ndarray, earlier: np.ndarray, thresholds: np.ndarray, mode: str, confirm: float
) -> tuple[list[LabelledStem], np.ndarray]:
    """The label sets (and the probabilities it reports) of a round trained on an earlier round's table ``stems``,
    whose probabilities are ``earlier`` (``refine.later_rounds``: relabel, average or confirm)."""
    if mode == "average":
        probs = (probs + earlier) / 2
    if mode == "confirm":
        return confirm_changes(stems, probs, confirm), probs
    return relabel(stems, probs, thresholds), probs


def table_extras(stems: list[LabelledStem], refined: list[LabelledStem], probs: np.ndarray) -> list[dict]:
    """Extra label-table columns: per-class probabilities and whether the file-name label changed."""
    return [
        {
            **{f"p_{c}": round(float(p), 5) for c, p in zip(CLASSES, row)},
            "changed": int(r.labels != frozenset({s.stem})),
        }
        for s, r, row in zip(stems, refined, probs, strict=True)
    ]


def _category(labels: frozenset[str]) -> str:
    return format_labels(labels) or "none"


def refinement_scores(
    stems: list[LabelledStem],
    refined: list[LabelledStem],
    truth: list[frozenset[str]],
    noise: list[str],
    probs: np.ndarray,
) -> dict:
    """How well the refinement recovered the truth.

    Args:
        stems: the stems with the label sets the round's classifier was trained on (file names for
            round 1); ``stem`` is the file-name label.
        refined: the same stems with refined label sets.
        truth: what each stem truly contains.
        noise: each stem's corruption kind (``""`` when clean).
        probs: ``(stems, 4)`` probabilities (for the threshold sweep).

    Returns:
        Accuracy before/after, corrupted-stem detection, per-noise-kind recovery, per-class scores,
        the threshold sweep and the refined-vs-true pairs for the confusion plot.
    """
    named = [frozenset({s.stem}) for s in stems]
    after = [r.labels for r in refined]
    corrupted = np.array([t != n for t, n in zip(truth, named)])
    flagged = np.array([a != n for a, n in zip(after, named)])
    true_vec = np.array([[c in t for c in CLASSES] for t in truth])
    pred_vec = np.array([[c in a for c in CLASSES] for a in after])
    by_kind = {}
    for kind in sorted({k for k in noise if k}):
        members = [i for i, k in enumerate(noise) if k == kind]
        by_kind[kind] = {
            "stems": len(members),
            "recovered": float(np.mean([after[i] == truth[i] for i in members])),
            "flagged": float(np.mean(flagged[members])),
        }
    clean = ~corrupted
    tp = int(np.sum(flagged & corrupted))
    sweep_acc, sweep_flag = [], []
    for t in SWEEP:
        sets = [frozenset(c for c, p in zip(CLASSES, row) if p >= t) for row in probs]
        sweep_acc.append(float(np.mean([s == tr for s, tr in zip(sets, truth)])))
        sweep_flag.append(np.array([s != n for s, n in zip(sets, named)]))
    curve = {"threshold": SWEEP.tolist(), "precision": [], "recall": [], "label_accuracy": sweep_acc}
    for flags in sweep_flag:
        hits = int(np.sum(flags & corrupted))
        curve["precision"].append(hits / max(1, int(flags.sum())))
        curve["recall"].append(hits / max(1, int(corrupted.sum())))
    return {
        "stems": len(stems),
        "label_accuracy_noisy": float(np.mean([n == t for n, t in zip(named, truth)])),
        "label_accuracy_input": float(np.mean([s.labels == t for s, t in zip(stems, truth)])),
        "label_accuracy_refined": float(np.mean([a == t for a, t in zip(after, truth)])),
        "changed": int(flagged.sum()),
        "detection": {
            "precision": tp / max(1, int(flagged.sum())),
            "recall": tp / max(1, int(corrupted.sum())),
            "corrupted": int(corrupted.sum()),
        },
        "clean_wrongly_changed": int(np.sum(flagged & clean)),
        "clean_wrongly_changed_rate": float(np.sum(flagged & clean) / max(1, int(clean.sum()))),
        "by_noise_kind": by_kind,
        "per_class": multilabel_scores(true_vec, pred_vec, list(CLASSES))["per_class"],
        "sweep": curve,
        "confusion": [{"actual": _category(t), "predicted": _category(a)} for t, a in zip(truth, after)],
        "outcomes": dict(Counter(_category(a) for a in after)),
    }
