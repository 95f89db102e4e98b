"""Where a dataset's stems are: the folder layouts the pipeline reads, resolved to one list of stem files.

A *stem file* is a song, a class name (its *label*: the file name says what it holds) and a path. Layouts
(``data.layout``) of the training root ``data.root``:

- ``musdb``: MUSDB18-HQ, ``<root>/train/<song>/{bass,drums,other,vocals}.<ext>``; ``mixture.wav`` and any
  other file are ignored.
- ``songs``: the SDX'23 label-noise release, ``<root>/<song>/{bass,drums,other,vocals}.<ext>``, no split.
- ``csv``: any files, listed in ``<root>/stems.csv`` with columns ``path`` (relative to the root) and
  ``label`` (a class), and optionally ``song`` (default: the file's folder name).

The clean test songs are always song folders of four stems: ``data.test_root`` (MUSDB18-HQ's ``test/``).
``<ext>`` is a format libsndfile reads (:data:`READABLE`); a stem in another format is refused with a
message that says what was found. Nothing here reads audio: validation is :mod:`selfrefine.data.index`'s.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from selfrefine import CLASSES
from selfrefine.errors import UserError

LAYOUTS = ("musdb", "songs", "csv")
READABLE = (".wav", ".flac", ".ogg", ".aiff", ".aif")
"""Stem file formats read (through soundfile/libsndfile)."""
STEMS_CSV = "stems.csv"
"""The file list of the ``csv`` layout, in the root."""


class LayoutError(UserError):
    """A root that does not have the layout it was declared to have; one line naming it and the fix."""


@dataclass(frozen=True)
class StemFile:
    """One stem file: its song, its label (the class its name gives) and where it is."""

    song: str
    stem: str
    path: Path


@dataclass
class Scan:
    """What a root holds: the usable stem files, and ``{"path", "reason"}`` for each song or file left out."""

    stems: list[StemFile]
    problems: list[dict]


def _stem_file(song: Path, cls: str) -> tuple[Path | None, str]:
    """The file of class ``cls`` in a song folder, or ``None`` and why not (naming what was found)."""
    found = sorted(p for p in song.iterdir() if p.is_file() and p.stem == cls)
    readable = [p for p in found if p.suffix.lower() in READABLE]
    if len(readable) == 1:
        return readable[0], ""
    if len(readable) > 1:
        names = ", ".join(p.name for p in readable)
        return None, f"{song}: {len(readable)} files for stem {cls} ({names}); keep one"
    if found:
        names = ", ".join(p.name for p in found)
        return None, f"{song}: found {names}, a format not read here; convert it to WAV or FLAC"
    return None, f"{song}: missing stem {cls} (no {cls}.wav or {cls}.flac); add it or remove the song folder"


def scan_songs(folder: Path, what: str) -> Scan:
    """Every song folder of ``folder`` with a readable file for each of the four classes.

    A song that lacks one (or has it in a format not read) is left out with its reason: a training song
    is used whole or not at all, like a test song, so corruption and mixing always see all four stems.

    Args:
        folder: holds one sub-folder per song.
        what: the param that points there (``data.root``, ``data.test_root``), for the messages.
    """
    if not folder.is_dir():
        raise LayoutError(f"{folder}: folder missing; point {what} at a folder of song folders")
    songs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not songs:
        raise LayoutError(f"{folder}: no song folders; point {what} at a folder of song folders")
    stems: list[StemFile] = []
    problems: list[dict] = []
    for song in songs:
        found = {c: _stem_file(song, c) for c in CLASSES}
        missing = [reason for path, reason in found.values() if path is None]
        if missing:
            problems.append({"path": str(song), "reason": missing[0]})
            continue
        stems.extend(StemFile(song.name, c, found[c][0]) for c in CLASSES)
    return Scan(stems, problems)


def scan_csv(root: Path) -> Scan:
    """The stem files ``<root>/stems.csv`` lists (see module docstring); a bad row is a problem, not a crash."""
    table = root / STEMS_CSV
    if not table.is_file():
        raise LayoutError(f"{table}: missing; the csv layout lists its stems there (columns path,label[,song])")
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if not {"path", "label"} <= columns:
            raise LayoutError(f"{table}: needs columns path and label (found {', '.join(sorted(columns)) or 'none'})")
        rows = list(reader)
    stems: list[StemFile] = []
    problems: list[dict] = []
    for n, row in enumerate(rows, start=2):  # line numbers as an editor shows them (1 is the header)
        where = f"{table}:{n}"
        path = Path(row["path"])
        label = row["label"].strip()
        if label not in CLASSES:
            problems.append({"path": where, "reason": f"{where}: label '{label}' is not one of {', '.join(CLASSES)}"})
            continue
        if path.is_absolute() or ".." in path.parts:
            problems.append(
                {
                    "path": where,
                    "reason": f"{where}: {path} is outside the root; list files under {root} (DVC tracks it)",
                }
            )
            continue
        full = root / path
        if not full.is_file():
            problems.append({"path": str(full), "reason": f"{full}: listed at {where} but missing; restore it"})
            continue
        if full.suffix.lower() not in READABLE:
            problems.append(
                {"path": str(full), "reason": f"{full}: a {full.suffix} file, a format not read here; convert it"}
            )
            continue
        stems.append(StemFile((row.get("song") or "").strip() or path.parent.name, label, full))
    seen: dict[tuple[str, str], Path] = {}
    for stem in stems:
        if (stem.song, stem.stem) in seen:
            raise LayoutError(
                f"{table}: song '{stem.song}' has two {stem.stem} stems ({seen[(stem.song, stem.stem)]}, {stem.path}); "
                "give them different songs"
            )
        seen[(stem.song, stem.stem)] = stem.path
    stems.sort(key=lambda s: (s.song, CLASSES.index(s.stem)))
    return Scan(stems, problems)


def training_stems(root: Path, layout: str) -> Scan:
    """The training stem files of ``root`` in ``layout`` (one of :data:`LAYOUTS`), by song then class."""
    if layout == "musdb":
        return scan_songs(root / "train", "data.root (musdb layout: <root>/train/<song>/)")
    if layout == "songs":
        return scan_songs(root, "data.root")
    if layout == "csv":
        return scan_csv(root)
    raise LayoutError(f"data.layout: unknown layout '{layout}'; use one of {', '.join(LAYOUTS)}")


def evaluation_stems(test_root: Path) -> Scan:
    """The clean test songs: song folders of ``test_root`` with all four stems."""
    return scan_songs(test_root, "data.test_root")
