"""Dataset index, label tables and in-memory access to stems.

Layout (MUSDB18-HQ): ``<root>/{train,test}/<song>/{bass,drums,other,vocals}.wav``. A stem's *label* is
its file name; its *truth* (known only for generated or deliberately corrupted data) is the set of
classes it really contains. A *label table* assigns each training stem a label set: from file names
(``noisy``), from the truth (``clean``) or from a classifier (``refined_*``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from selfrefine import CLASSES
from selfrefine.audio import AudioError, read_audio, rms_db
from selfrefine.errors import UserError
from selfrefine.outputs import read_csv, write_csv

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["split", "song", "stem", "path", "seconds", "sample_rate", "channels", "silent", "truth", "noise"]
LABEL_COLUMNS = ["song", "stem", "path", "labels"]


def labels_path(name: str) -> Path:
    """Where label table ``name`` lives: ``data/labels/<name>.csv``."""
    return Path("data/labels") / f"{name}.csv"


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


def split_songs(stems: list[LabelledStem], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation stems, split by song so no song is in both."""
    songs = sorted({s.song for s in stems})
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(val_fraction * len(songs))))
    val_songs = set(rng.permutation(songs)[:n_val].tolist())
    train = [i for i, s in enumerate(stems) if s.song not in val_songs]
    val = [i for i, s in enumerate(stems) if s.song in val_songs]
    return train, val


class BadDataError(UserError):
    """The dataset has a file or song that cannot be used; one line naming it and the fix."""


@dataclass(frozen=True)
class Checks:
    """How the index validates stems.

    Attributes:
        sample_rate, channels, convert: see :func:`selfrefine.audio.read_audio`.
        silence_db: RMS level below which a stem is flagged silent.
        on_bad_file: ``"error"`` raises at the first bad file; ``"skip"`` leaves out the song of a
            missing stem and the bad file itself, and reports it.
    """

    sample_rate: int
    channels: int
    convert: bool
    silence_db: float
    on_bad_file: str


def _stem_row(path: Path, split: str, song: str, stem: str, checks: Checks) -> dict:
    """Validate one stem file and describe it (raises :class:`AudioError`)."""
    audio = read_audio(path, checks.sample_rate, checks.channels, checks.convert)
    info = sf.info(str(path))
    return {
        "split": split,
        "song": song,
        "stem": stem,
        "path": str(path),
        "seconds": round(info.frames / info.samplerate, 4),
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "silent": int(rms_db(audio) < checks.silence_db),
    }


def index_split(root: Path, split: str, checks: Checks) -> tuple[list[dict], list[dict]]:
    """Scan and validate every stem of ``root/<song>/`` folders.

    Args:
        root: folder holding one sub-folder per song.
        split: ``"train"`` or ``"test"`` (written to the rows).
        checks: validation settings.

    Returns:
        (rows, skipped): index rows (without truth/noise) and ``{"path", "reason"}`` for each skip.

    Raises:
        BadDataError: a bad file or a missing stem with ``on_bad_file="error"``, or no song at all.
    """
    if not root.is_dir():
        raise BadDataError(f"{root}: folder missing; point data.root at a MUSDB18-HQ-layout folder")
    songs = sorted(p for p in root.iterdir() if p.is_dir())
    if not songs:
        raise BadDataError(f"{root}: no song folders; point data.root at a MUSDB18-HQ-layout folder")
    rows: list[dict] = []
    skipped: list[dict] = []
    for n, song in enumerate(songs):
        missing = [c for c in CLASSES if not (song / f"{c}.wav").is_file()]
        if missing:
            reason = f"{song}: missing stem {missing[0]}.wav; add it or remove the song folder"
            if checks.on_bad_file == "error":
                raise BadDataError(reason)
            skipped.append({"path": str(song), "reason": reason})
            continue
        for stem in CLASSES:
            path = song / f"{stem}.wav"
            try:
                rows.append(_stem_row(path, split, song.name, stem, checks))
            except AudioError as err:
                if checks.on_bad_file == "error":
                    raise BadDataError(f"{err} (or set data.on_bad_file: skip)") from None
                skipped.append({"path": str(path), "reason": str(err)})
        if (n + 1) % max(1, len(songs) // 5) == 0:
            log.info("index %s: %d/%d songs", split, n + 1, len(songs))
    if split == "test":  # a test song is scored on all four stems or not at all
        broken = {Path(s["path"]).parent for s in skipped}
        rows = [r for r in rows if Path(r["path"]).parent not in broken]
    return rows, skipped


def build_index(noisy_root: Path, clean_root: Path, checks: Checks) -> tuple[list[dict], list[dict]]:
    """Index the (noisy) training split and the clean test split, with truth where known.

    Args:
        noisy_root: output of the ``corrupt`` stage (``train/`` and ``truth.csv``).
        clean_root: the dataset root whose ``test/`` split is the clean evaluation set.
        checks: validation settings (see :func:`index_split`).

    Returns:
        (rows with :data:`INDEX_COLUMNS`, skipped files).
    """
    truth = {(r["song"], r["stem"]): r for r in read_csv(noisy_root / "truth.csv")}
    train, skipped_train = index_split(noisy_root / "train", "train", checks)
    test, skipped_test = index_split(clean_root / "test", "test", checks)
    for row in train:
        known = truth[(row["song"], row["stem"])]
        row["truth"], row["noise"] = known["truth"], known["noise"]
    for row in test:
        row["truth"], row["noise"] = row["stem"], ""
    return train + test, skipped_train + skipped_test


def label_tables(index: list[dict]) -> dict[str, list[LabelledStem]]:
    """The two label tables the index implies: ``noisy`` (file names) and ``clean`` (the truth).

    ``clean`` is empty when the truth is unknown (real noisy data).
    """
    train = [r for r in index if r["split"] == "train"]
    noisy = [LabelledStem(r["song"], r["stem"], r["path"], frozenset({r["stem"]})) for r in train]
    known = all(r["truth"] != "?" for r in train)
    clean = [LabelledStem(r["song"], r["stem"], r["path"], parse_labels(r["truth"])) for r in train] if known else []
    return {"noisy": noisy, "clean": clean}


def evaluation_songs(index: list[dict]) -> dict[str, dict[str, str]]:
    """``{song: {class: path}}`` for the clean test split of an index."""
    songs: dict[str, dict[str, str]] = {}
    for r in index:
        if r["split"] == "test":
            songs.setdefault(r["song"], {})[r["stem"]] = r["path"]
    return songs


class StemStore:
    """Training stems held in memory, with crops that skip silence.

    Args:
        paths: stem files.
        sample_rate, channels: the rate and channel count to hold them at (converted on load).
        silence_db: crops quieter than this (RMS dBFS) count as silent.
    """

    def __init__(self, paths: Sequence[str], sample_rate: int, channels: int, silence_db: float) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.silence_db = silence_db
        self.audio = [read_audio(p, sample_rate, channels) for p in paths]
        self._frame = sample_rate // 4
        self._frame_db = [self._frame_levels(a) for a in self.audio]

    def _frame_levels(self, audio: np.ndarray) -> np.ndarray:
        """RMS level (dBFS) of each quarter-second frame, ``(frames,)``."""
        n = audio.shape[1] // self._frame
        if n == 0:
            return np.array([rms_db(audio)])
        power = np.square(audio[:, : n * self._frame], dtype=np.float64).reshape(audio.shape[0], n, -1).mean(axis=(0, 2))
        with np.errstate(divide="ignore"):
            return 10 * np.log10(power)

    def __len__(self) -> int:
        return len(self.audio)

    def digest(self) -> str:
        """SHA-256 of all audio held (so a resumed training run provably saw the same stems)."""
        h = hashlib.sha256()
        for audio in self.audio:
            h.update(audio.tobytes())
        return h.hexdigest()[:16]

    def is_silent(self, i: int) -> bool:
        """Whether stem ``i`` has no frame above the silence level."""
        return bool(np.all(self._frame_db[i] < self.silence_db))

    def crop(self, i: int, length: int, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
        """A random ``(channels, length)`` crop of stem ``i``, preferring one that is not silent.

        Shorter stems are zero-padded at a random position.
        """
        audio = self.audio[i]
        n = audio.shape[1]
        if n <= length:
            out = np.zeros((self.channels, length), dtype=np.float32)
            start = int(rng.integers(0, length - n + 1))
            out[:, start : start + n] = audio
            return out
        start = 0
        for _ in range(tries):
            start = int(rng.integers(0, n - length + 1))
            first, last = start // self._frame, (start + length) // self._frame
            if np.any(self._frame_db[i][first : max(last, first + 1)] >= self.silence_db):
                break
        return audio[:, start : start + length]

    def windows(self, i: int, length: int, hop: int) -> np.ndarray:
        """Every ``length``-sample window of stem ``i`` with hop ``hop`` that is not silent.

        Returns:
            ``(windows, channels, length)``; a stem with no loud window gives its loudest one.
        """
        audio = self.audio[i]
        if audio.shape[1] < length:
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        crops = np.lib.stride_tricks.sliding_window_view(audio, length, axis=1)[:, ::hop].transpose(1, 0, 2)
        levels = np.array([rms_db(c) for c in crops])
        loud = levels >= self.silence_db
        return np.ascontiguousarray(crops[loud] if loud.any() else crops[[int(np.argmax(levels))]])
