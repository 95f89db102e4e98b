"""Label tables: the label set each training stem is given.

A stem's *label* is its file name; its *truth* (known only for generated or deliberately corrupted data)
is the set of classes it really contains. A *label table* (``data/labels/<name>.csv``) assigns each
training stem a label set: from file names (``noisy``), from the truth (``clean``) or from a refinement
round's classifier (``refined_<round>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.errors import UserError
from selfrefine.outputs import read_csv, write_csv

LABEL_COLUMNS = ["song", "stem", "path", "labels"]


def format_labels(labels: Iterable[str]) -> str:
    """A label set as text, classes in :data:`CLASSES` order joined by ``+`` (``""`` for none)."""
    labels = set(labels)
    return "+".join(c for c in CLASSES if c in labels)


def parse_labels(text: str) -> frozenset[str]:
    """Inverse of :func:`format_labels`."""
    labels = frozenset(t for t in text.split("+") if t)
    unknown = labels - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown class(es) {sorted(unknown)} in label set '{text}'")
    return labels


def labels_to_vector(labels: frozenset[str]) -> np.ndarray:
    """``(4,)`` float32 multi-hot vector in :data:`CLASSES` order."""
    return np.array([c in labels for c in CLASSES], dtype=np.float32)


@dataclass(frozen=True)
class LabelledStem:
    """A training stem and the label set a label table gives it."""

    song: str
    stem: str
    path: str
    labels: frozenset[str]


def read_label_table(path: str | Path) -> list[LabelledStem]:
    """Read a label table (any table with the :data:`LABEL_COLUMNS`)."""
    return [LabelledStem(r["song"], r["stem"], r["path"], parse_labels(r["labels"])) for r in read_csv(path)]


def write_label_table(path: str | Path, stems: Sequence[LabelledStem], extra: Sequence[dict] | None = None) -> None:
    """Write a label table; ``extra`` adds per-row columns (e.g. probabilities)."""
    extra = extra or [{} for _ in stems]
    rows = [
        {"song": s.song, "stem": s.stem, "path": s.path, "labels": format_labels(s.labels), **e}
        for s, e in zip(stems, extra, strict=True)
    ]
    columns = LABEL_COLUMNS + [k for k in (extra[0] if extra else {}) if k not in LABEL_COLUMNS]
    write_csv(path, rows, columns)


def p_exactly(probs: Sequence[float], labels: Iterable[str]) -> float:
    """The classifier's probability that a stem holds exactly the classes ``labels`` and no other, from its
    per-class probabilities ``probs`` (:data:`CLASSES` order) read as independent: the confidence the audit and
    ranked pools (``separate.keep``) order stems by."""
    labels = set(labels)
    return float(np.prod([p if c in labels else 1.0 - p for c, p in zip(CLASSES, probs, strict=True)]))


def read_probabilities(path: str | Path) -> np.ndarray | None:
    """A refined table's ``(stems, 4)`` per-class probabilities (its ``p_<class>`` columns); ``None`` for a
    table without them (``noisy``, ``clean``, ``selected``)."""
    rows = read_csv(path)
    columns = [f"p_{c}" for c in CLASSES]
    if not rows or any(c not in rows[0] for c in columns):
        return None
    return np.array([[float(r[c]) for c in columns] for r in rows], dtype=np.float64)


POLICIES = ("single", "named", "partial")
"""The pool policies of ``separate.pool`` (see :func:`build_pools`)."""


def build_pools(
    stems: list[LabelledStem],
    policy: str,
    among: list[int],
    keep: float = 1.0,
    probabilities: np.ndarray | None = None,
) -> dict[str, list[int]]:
    """``{class: [stem index, ...]}`` of the stems ``among`` under ``policy`` (``separate.pool``), in index order.

    ``single``: a stem joins the pool of class ``c`` when its label set is exactly ``{c}``; ``named``: a stem joins
    the pool of its file-name class when its label set contains that class; ``partial``: a stem joins the pool of
    every class its label set holds (a stem with several supervises the sum of their estimates:
    :class:`selfrefine.data.mixing.SourceMixer`).

    ``keep`` < 1 (ranked pools, ``separate.keep``): each pool keeps the ``ceil(keep * n)`` of its ``n`` stems that
    ``probabilities`` (the table's, :func:`read_probabilities`) make likeliest to hold exactly their label set
    (:func:`p_exactly`); ties keep the lower index.

    Raises:
        UserError: ``keep`` < 1 without probabilities (a table no classifier labelled).
    """
    pools: dict[str, list[int]] = {c: [] for c in CLASSES}
    for i in among:
        s = stems[i]
        if policy == "single" and len(s.labels) == 1:
            pools[next(iter(s.labels))].append(i)
        elif policy == "named" and s.stem in s.labels:
            pools[s.stem].append(i)
        elif policy == "partial":
            for c in s.labels:
                pools[c].append(i)
    if keep >= 1.0:
        return pools
    if probabilities is None:
        raise UserError(
            f"separate.keep {keep}: ranked pools need a refined table's probabilities; "
            "train on a refined_<round> table or set separate.keep: 1.0"
        )
    confidence = {i: p_exactly(probabilities[i], stems[i].labels) for i in among}
    for c, pool in pools.items():
        ranked = sorted(pool, key=lambda i: (-confidence[i], i))
        pools[c] = sorted(ranked[: int(np.ceil(keep * len(pool) - 1e-9))])
    return pools


def split_songs(
    stems: list[LabelledStem], val_fraction: float, seed: int, key: str = "val_fraction"
) -> tuple[list[int], list[int]]:
    """Indices of training and validation stems, split by song so no song is in both.

    Raises:
        UserError: the split leaves no training or no validation song (``key`` names the param to change).
    """
    songs = sorted({s.song for s in stems})
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(val_fraction * len(songs))))
    val_songs = set(rng.permutation(songs)[:n_val].tolist())
    train = [i for i, s in enumerate(stems) if s.song not in val_songs]
    val = [i for i, s in enumerate(stems) if s.song in val_songs]
    if not train or not val:
        raise UserError(
            f"{key} {val_fraction} leaves no training or no validation song among {len(songs)} songs; "
            "use more songs or another fraction"
        )
    return train, val


def song_folds(stems: list[LabelledStem], folds: int, seed: int) -> list[list[str]]:
    """The stems' songs dealt into ``folds`` folds of near-equal size (a seeded permutation), each sorted.

    Raises:
        UserError: fewer songs than folds (``refine.folds`` must be lowered).
    """
    songs = sorted({s.song for s in stems})
    if len(songs) < folds:
        raise UserError(f"refine.folds {folds}: only {len(songs)} songs to split; use at most {len(songs)} folds")
    order = np.random.default_rng(seed).permutation(songs).tolist()
    return [sorted(order[j::folds]) for j in range(folds)]
