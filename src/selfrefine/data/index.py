"""The dataset index: every stem of the user's data validated once, where it is, before anything uses it.

The training stems come from ``data.root`` in any layout of :mod:`selfrefine.data.layouts`, the clean test
songs from ``data.test_root``. Rows name the user's own files, so a skipped or bad file is reported as the
file the user has. Label noise is injected afterwards, into the stems the index accepted (``corrupt``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from selfrefine.data.audio import AudioError, read_audio, rms_db
from selfrefine.data.layouts import Scan, StemFile, evaluation_stems, training_stems
from selfrefine.errors import UserError

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["split", "song", "stem", "path", "seconds", "sample_rate", "channels", "silent"]


class BadDataError(UserError):
    """The dataset has a file or song that cannot be used; one line naming it and the fix."""


@dataclass(frozen=True)
class Checks:
    """How the index validates stems.

    Attributes:
        sample_rate, channels, convert: see :func:`selfrefine.audio.read_audio`.
        silence_db: RMS level below which a stem is flagged silent.
        on_bad_file: ``"error"`` raises at the first bad file or incomplete song; ``"skip"`` leaves out
            the song of a bad or missing stem, and reports the user's file and why.
    """

    sample_rate: int
    channels: int
    convert: bool
    silence_db: float
    on_bad_file: str


def _stem_row(stem: StemFile, split: str, checks: Checks) -> dict:
    """Validate one stem file and describe it (raises :class:`AudioError`)."""
    audio = read_audio(stem.path, checks.sample_rate, checks.channels, checks.convert)
    info = sf.info(str(stem.path))
    return {
        "split": split,
        "song": stem.song,
        "stem": stem.stem,
        "path": str(stem.path),
        "seconds": round(info.frames / info.samplerate, 4),
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "silent": int(rms_db(audio) < checks.silence_db),
    }


def index_split(scan: Scan, split: str, checks: Checks) -> tuple[list[dict], list[dict]]:
    """Validate every stem file of a scanned root; a song with a bad file is left out whole.

    Args:
        scan: the root's stem files and the songs its layout already left out.
        split: ``"train"`` or ``"test"`` (written to the rows).
        checks: validation settings.

    Returns:
        (rows, skipped): index rows and ``{"path", "reason"}`` for each file or song left out.

    Raises:
        BadDataError: with ``on_bad_file="error"``, the first bad file or incomplete song; and a split
            with no usable stem at all.
    """
    skipped = list(scan.problems)
    if skipped and checks.on_bad_file == "error":
        raise BadDataError(f"{skipped[0]['reason']} (or set data.on_bad_file: skip)")
    rows: list[dict] = []
    broken: set[str] = set()
    songs = sorted({s.song for s in scan.stems})
    for n, stem in enumerate(scan.stems):
        try:
            rows.append(_stem_row(stem, split, checks))
        except AudioError as err:
            if checks.on_bad_file == "error":
                raise BadDataError(f"{err} (or set data.on_bad_file: skip)") from None
            skipped.append({"path": str(stem.path), "reason": str(err)})
            broken.add(stem.song)
        if (n + 1) % max(1, len(scan.stems) // 5) == 0:
            log.info("index %s: %d/%d stems of %d songs", split, n + 1, len(scan.stems), len(songs))
    rows = [r for r in rows if r["song"] not in broken]  # a song is used with all its stems or not at all
    if not rows:
        raise BadDataError(f"no usable {split} stem: every song was left out (see the first: {skipped[0]['reason']})")
    return rows, skipped


def build_index(root: Path, layout: str, test_root: Path, checks: Checks) -> tuple[list[dict], list[dict]]:
    """Index the training stems of ``root`` (in ``layout``) and the clean test songs of ``test_root``.

    Returns:
        (rows with :data:`INDEX_COLUMNS`, skipped files and songs, each ``{"path", "reason"}``).
    """
    train, skipped_train = index_split(training_stems(root, layout), "train", checks)
    test, skipped_test = index_split(evaluation_stems(test_root), "test", checks)
    return train + test, skipped_train + skipped_test


def evaluation_songs(index: list[dict]) -> dict[str, dict[str, str]]:
    """``{song: {class: path}}`` for the clean test split of an index."""
    songs: dict[str, dict[str, str]] = {}
    for r in index:
        if r["split"] == "test":
            songs.setdefault(r["song"], {})[r["stem"]] = r["path"]
    return songs
