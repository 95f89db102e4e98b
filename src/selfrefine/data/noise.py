"""Label-noise injection modelled on the SDX'23 label-noise track.

A corrupted training stem keeps its file name (its *label*) but holds the wrong audio:

- ``swap``: the file named ``s`` holds another class ``t`` of the same song (truth ``{t}``);
- ``merge``: the file named ``s`` holds ``s + t`` of the same song (truth ``{s, t}``);
- ``silent``: the file named ``s`` holds silence (truth ``{}``);
- ``foreign``: the file named ``s`` holds another class ``t`` of *another* song (truth ``{t}``): unlike a
  swap, the wrong audio is not part of the song's own mixture, so nothing in the song corroborates it.

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
from selfrefine.data.labels import LabelledStem, parse_labels
from selfrefine.errors import UserError
from selfrefine.outputs import atomic_dir, write_csv

log = logging.getLogger(__name__)

KINDS = ("swap", "merge", "silent", "foreign")
TRUTH_COLUMNS = ["song", "stem", "path", "noise", "truth"]
"""``truth.csv``: each noisy stem's corruption kind (``""``: none) and what it truly holds (``?``: unknown)."""


@dataclass(frozen=True)
class Corruption:
    """What a corrupted stem file really holds."""

    kind: str
    other: str | None  # the class swapped in or merged in; None for silent
    song: str | None = None  # foreign: the song the other class's audio comes from

    def truth(self, label: str) -> frozenset[str]:
        """The classes the file named ``label`` truly contains."""
        if self.kind in ("swap", "foreign"):
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
        is always one the song has a file for (foreign: one the other song has a file for). Random draws
        for a kind happen only when it is chosen, so a plan with a kind at weight 0 equals the plan without it.
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
        source = None
        if kind == "foreign":
            donors = sorted(s for s in present if s != song and present[s] - {label})
            source = donors[int(rng.integers(len(donors)))] if donors else None
            kind = kind if source else "silent"
        others = [c for c in CLASSES if c != label and c in present[source or song]]
        if not others:
            kind = "silent"
        other = None if kind == "silent" else others[int(rng.integers(len(others)))]
        plan[(song, label)] = Corruption(kind, other, source if kind == "foreign" else None)
    return plan


def corrupted_audio(own: np.ndarray, other: np.ndarray | None, corruption: Corruption) -> np.ndarray:
    """The audio a file holds after ``corruption``.

    Args:
        own: the file's own clean stem, ``(channels, samples)``.
        other: the clean stem of ``corruption.other`` (of ``corruption.song`` for foreign); None for silent.
        corruption: what happens to it.

    Returns:
        ``(channels, samples)`` float32 audio.
    """
    if corruption.kind == "swap":
        return other.copy()
    if corruption.kind == "foreign":  # cut or padded to the file's own length: songs differ in length
        out = np.zeros(own.shape, dtype=np.float32)
        n = min(own.shape[1], other.shape[1])
        out[:, :n] = other[:, :n]
        return out
    if corruption.kind == "merge":
        n = max(own.shape[1], other.shape[1])
        out = np.zeros((own.shape[0], n), dtype=np.float32)
        out[:, : own.shape[1]] += own
        out[:, : other.shape[1]] += other
        return out
    return np.zeros_like(own)


def _link_or_copy(src: Path, dst: Path, link: bool) -> None:
    """Hard-link ``src`` to ``dst`` if ``link`` and the file system allows it, else copy the bytes."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def corrupt_dataset(
    stems: list[dict],
    out: Path,
    rate: float,
    weights: dict[str, float],
    seed: int,
    sample_rate: int,
    channels: int,
    convert: bool,
    truth_known: bool,
    link: bool = False,
) -> tuple[list[dict], dict[str, float]]:
    """Write a noisy copy of the indexed training stems to ``out/train/<song>/`` and their truth.

    Args:
        stems: the index's training rows (``song``, ``stem``, ``path``), already validated.
        out: output folder (replaced atomically); it also gets ``truth.csv``.
        rate: fraction of training stems to corrupt.
        weights: relative weight per corruption kind.
        seed: random seed.
        sample_rate: rate corrupted files are written at.
        channels: channel count corrupted files are written with.
        convert: whether sources of another rate or channel count are converted (else an error).
        truth_known: whether the source stems are clean; if not (real noisy data) the truth column is
            ``?`` and ``rate`` must be 0.
        link: hard-link the stems it leaves clean (else copy them). Only where the output's owner will not
            hard-link it into a cache that it then makes read-only: DVC with ``cache.type: hardlink`` would turn
            the user's own file into a read-only cache object (:func:`selfrefine.stages.corrupt.dvc_links_cache`).

    Returns:
        (rows, summary): per stem ``{"song", "stem", "path", "noise", "truth"}`` with ``path`` the
        noisy copy; and stem count, corrupted count, measured rate, count per kind.
    """
    if not stems:
        raise UserError("no training stem to corrupt; run the index stage first (dvc repro index)")
    source = {(r["song"], r["stem"]): Path(r["path"]) for r in stems}
    files = list(source)
    songs = sorted({song for song, _ in files})
    plan = plan_corruption(files, rate, weights, seed)
    rows = []
    with atomic_dir(out) as tmp:
        for n, song in enumerate(songs):
            (tmp / "train" / song).mkdir(parents=True)
            present = [c for c in CLASSES if (song, c) in source]
            needed = {(song, c): plan[(song, c)] for c in present if (song, c) in plan}
            others = {(k.song or song, k.other) for k in needed.values() if k.other}
            audio = {key: read_audio(source[key], sample_rate, channels, convert) for key in needed.keys() | others}
            for label in present:
                corruption = plan.get((song, label))
                if corruption is None:  # the user's file, byte for byte, in its own format
                    name = f"{label}{source[(song, label)].suffix.lower()}"
                    _link_or_copy(source[(song, label)], tmp / "train" / song / name, link)
                    truth = frozenset({label})
                else:
                    name = f"{label}.wav"
                    other = audio.get((corruption.song or song, corruption.other))
                    audio_out = corrupted_audio(audio[(song, label)], other, corruption)
                    write_audio(tmp / "train" / song / name, audio_out, sample_rate)
                    truth = corruption.truth(label)
                rows.append(
                    {
                        "song": song,
                        "stem": label,
                        "path": str(out / "train" / song / name),
                        "noise": corruption.kind if corruption else "",
                        "truth": "+".join(c for c in CLASSES if c in truth) if truth_known else "?",
                    }
                )
            if (n + 1) % max(1, len(songs) // 10) == 0:
                log.info("corrupt: %d/%d songs", n + 1, len(songs))
        write_csv(tmp / "truth.csv", rows, TRUTH_COLUMNS)
    counts = {kind: sum(1 for c in plan.values() if c.kind == kind) for kind in KINDS}
    total = len(rows)
    return rows, {"stems": total, "corrupted": len(plan), "rate": len(plan) / total, **counts}


def label_tables(rows: list[dict]) -> dict[str, list[LabelledStem]]:
    """The two label tables of the corrupted stems: ``noisy`` (file names) and ``clean`` (the truth).

    ``clean`` is empty when the truth is unknown (real noisy data).
    """
    noisy = [LabelledStem(r["song"], r["stem"], r["path"], frozenset({r["stem"]})) for r in rows]
    known = all(r["truth"] != "?" for r in rows)
    clean = [LabelledStem(r["song"], r["stem"], r["path"], parse_labels(r["truth"])) for r in rows] if known else []
    return {"noisy": noisy, "clean": clean}
