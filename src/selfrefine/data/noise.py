"""Label-noise injection modelled on the SDX'23 label-noise track.

A corrupted training stem keeps its file name (its *label*) but holds the wrong audio:

- ``swap``: the file named ``s`` holds another class ``t`` of the same song (truth ``{t}``);
- ``merge``: the file named ``s`` holds ``s + t`` of the same song (truth ``{s, t}``);
- ``silent``: the file named ``s`` holds silence (truth ``{}``).

Exactly ``round(rate * n_stems)`` stems are corrupted, chosen uniformly, so every stem is corrupted
with probability ``rate`` and the measured rate equals it up to rounding. Uncorrupted files are
linked or copied byte for byte: source audio is never re-encoded, let alone modified.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.data.audio import read_audio, write_audio
from selfrefine.errors import UserError
from selfrefine.outputs import atomic_dir, write_csv

log = logging.getLogger(__name__)

KINDS = ("swap", "merge", "silent")


@dataclass(frozen=True)
class Corruption:
    """What a corrupted stem file really holds."""

    kind: str
    other: str | None  # the class swapped in or merged in; None for silent

    def truth(self, label: str) -> frozenset[str]:
        """The classes the file named ``label`` truly contains."""
        if self.kind == "swap":
            return frozenset({self.other})
        if self.kind == "merge":
            return frozenset({label, self.other})
        return frozenset()


def plan_corruption(
    stems: list[tuple[str, str]],
    rate: float,
    weights: dict[str, float],
    seed: int,
) -> dict[tuple[str, str], Corruption]:
    """Choose which stems to corrupt and how.

    Args:
        stems: ``(song, label)`` of every training stem file.
        rate: fraction of them to corrupt.
        weights: relative weight per kind in :data:`KINDS`.
        seed: random seed; the plan is a pure function of its arguments.

    Returns:
        ``{(song, label): Corruption}`` for the corrupted stems only; the class swapped or merged in
        is always one the song has a file for.
    """
    rng = np.random.default_rng(seed)
    present: dict[str, set[str]] = {}
    for song, label in stems:
        present.setdefault(song, set()).add(label)
    n_corrupt = int(round(rate * len(stems)))
    chosen = rng.choice(len(stems), size=n_corrupt, replace=False) if n_corrupt else []
    p = np.array([weights.get(k, 0.0) for k in KINDS], dtype=float)
    p = p / p.sum()
    plan: dict[tuple[str, str], Corruption] = {}
    for i in sorted(int(i) for i in chosen):
        song, label = stems[i]
        kind = KINDS[int(rng.choice(len(KINDS), p=p))]
        others = [c for c in CLASSES if c != label and c in present[song]]
        if not others:
            kind = "silent"
        other = None if kind == "silent" else others[int(rng.integers(len(others)))]
        plan[(song, label)] = Corruption(kind, other)
    return plan


def corrupted_audio(stems: dict[str, np.ndarray], label: str, corruption: Corruption) -> np.ndarray:
    """The audio the file named ``label`` holds after ``corruption``.

    Args:
        stems: the song's clean stems, ``{class: (channels, samples)}``.
        label: the file's class name.
        corruption: what happens to it.

    Returns:
        ``(channels, samples)`` float32 audio.
    """
    if corruption.kind == "swap":
        return stems[corruption.other].copy()
    if corruption.kind == "merge":
        own, other = stems[label], stems[corruption.other]
        n = max(own.shape[1], other.shape[1])
        out = np.zeros((own.shape[0], n), dtype=np.float32)
        out[:, : own.shape[1]] += own
        out[:, : other.shape[1]] += other
        return out
    return np.zeros_like(stems[label])


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` where the file system allows it, else copy the bytes."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def corrupt_dataset(
    clean_root: Path,
    out: Path,
    rate: float,
    weights: dict[str, float],
    seed: int,
    sample_rate: int,
    channels: int,
    convert: bool,
    truth_known: bool,
) -> dict[str, float]:
    """Write a noisy copy of ``clean_root/train`` to ``out/train`` and its truth to ``out/truth.csv``.

    Args:
        clean_root: MUSDB18-HQ-layout root whose ``train`` split is corrupted.
        out: output folder (replaced atomically).
        rate: fraction of training stems to corrupt.
        weights: relative weight per corruption kind.
        seed: random seed.
        sample_rate: rate corrupted files are written at.
        channels: channel count corrupted files are written with.
        convert: whether sources of another rate or channel count are converted (else an error).
        truth_known: whether ``clean_root``'s stems are clean; if not (real noisy data) the truth
            column is left empty and ``rate`` must be 0.

    Returns:
        Summary: stem count, corrupted count, measured rate, count per kind.
    """
    train = clean_root / "train"
    if not train.is_dir():
        raise UserError(f"{train}: no train split; point data.root at a MUSDB18-HQ-layout folder")
    songs = sorted(p.name for p in train.iterdir() if p.is_dir())
    files = [(song, c) for song in songs for c in CLASSES if (train / song / f"{c}.wav").is_file()]
    if not files:
        raise UserError(f"{train}: no stem files; point data.root at a MUSDB18-HQ-layout folder")
    plan = plan_corruption(files, rate, weights, seed)
    file_set = set(files)
    rows = []
    with atomic_dir(out) as tmp:
        for n, song in enumerate(songs):
            (tmp / "train" / song).mkdir(parents=True)
            present = [c for c in CLASSES if (song, c) in file_set]
            needed = {c for c in present if (song, c) in plan}
            sources = needed | {plan[(song, c)].other for c in needed} - {None}
            stems = {c: read_audio(train / song / f"{c}.wav", sample_rate, channels, convert) for c in sources}
            for label in present:
                dst = tmp / "train" / song / f"{label}.wav"
                corruption = plan.get((song, label))
                if corruption is None:
                    _link_or_copy(train / song / f"{label}.wav", dst)
                    truth = frozenset({label})
                else:
                    write_audio(dst, corrupted_audio(stems, label, corruption), sample_rate)
                    truth = corruption.truth(label)
                rows.append(
                    {
                        "song": song,
                        "stem": label,
                        "noise": corruption.kind if corruption else "",
                        "truth": "+".join(c for c in CLASSES if c in truth) if truth_known else "?",
                    }
                )
            if (n + 1) % max(1, len(songs) // 10) == 0:
                log.info("corrupt: %d/%d songs", n + 1, len(songs))
        write_csv(tmp / "truth.csv", rows, ["song", "stem", "noise", "truth"])
    counts = {kind: sum(1 for c in plan.values() if c.kind == kind) for kind in KINDS}
    total = len(rows)
    return {"stems": total, "corrupted": len(plan), "rate": len(plan) / total, **counts}
