"""The dataset index: every stem validated once, and the label tables the index implies.

Layout (MUSDB18-HQ): ``<root>/{train,test}/<song>/{bass,drums,other,vocals}.wav``. The training split
comes from the ``corrupt`` stage (with its ``truth.csv``); the test split is the clean one of
``data.root``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from selfrefine import CLASSES
from selfrefine.data.audio import AudioError, read_audio, rms_db
from selfrefine.data.labels import LabelledStem, parse_labels
from selfrefine.errors import UserError
from selfrefine.outputs import read_csv

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["split", "song", "stem", "path", "seconds", "sample_rate", "channels", "silent", "truth", "noise"]


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
