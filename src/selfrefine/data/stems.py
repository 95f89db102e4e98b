"""Training stems read on demand: crops and windows that skip silence, without holding the dataset in memory.

A :class:`StemStore` holds, per stem, only its length and the RMS level of each quarter-second frame.
Both are computed once per stem, in parallel, and kept in the stem cache (:func:`selfrefine.paths.stem_cache`)
keyed by the SHA-256 of the file's bytes plus the working rate and channel count: an edited or replaced
file gets a new key, so the cache never goes stale, and identical files share an entry. An entry records the
SHA-256 of its own files and is rebuilt when any of them is missing, truncated or garbled.

Audio is read crop by crop. A file at the working rate is read in place by frame offset (soundfile; a
mono file is duplicated to stereo, more channels averaged, per crop, exactly as a whole-file read
would); a file at another rate is resampled once into the cache as raw float32 frames and read from
there by offset. Open files are kept in a small LRU per process, so a data-loader worker opens its own.
Peak memory is a few stems' worth, whatever the number of stems (measured by
``benchmarks/scale.py``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import resource
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from selfrefine.data.audio import AudioError, decode, resample, rms_db, to_channels
from selfrefine.outputs import atomic_path
from selfrefine.paths import stem_cache

CACHE_VERSION = 1
"""Part of every cache key: bump it when what the cache holds changes."""


def _sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_levels(audio: np.ndarray, frame: int, block: int = 256) -> np.ndarray:
    """RMS level (dBFS) of each ``frame``-sample frame of ``(channels, samples)`` audio, ``(frames,)``.

    Computed ``block`` frames at a time, so a long stem needs no float64 copy of itself.
    """
    n = audio.shape[1] // frame
    if n == 0:
        return np.array([rms_db(audio)])
    power = np.empty(n)
    for a in range(0, n, block):
        b = min(n, a + block)
        part = np.square(audio[:, a * frame : b * frame], dtype=np.float64)
        power[a:b] = part.reshape(audio.shape[0], b - a, frame).mean(axis=(0, 2))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(power)


def loud_windows(audio: np.ndarray, length: int, hop: int, silence_db: float) -> np.ndarray:
    """Every ``length``-sample window of ``audio`` with hop ``hop`` that is not silent.

    Returns:
        ``(windows, channels, length)``; audio with no loud window gives its loudest one.
    """
    if audio.shape[1] < length:
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
    crops = np.lib.stride_tricks.sliding_window_view(audio, length, axis=1)[:, ::hop].transpose(1, 0, 2)
    levels = np.array([rms_db(c) for c in crops])
    loud = levels >= silence_db
    return np.ascontiguousarray(crops[loud] if loud.any() else crops[[int(np.argmax(levels))]])


@dataclass(frozen=True)
class StemInfo:
    """What a store keeps of one stem: where its frames are read from, how many, and how loud."""

    path: str
    key: str
    frames: int
    levels: np.ndarray
    raw: str | None
    """Cached float32 frames (``(frames, channels)`` row-major) when the file is not at the working rate."""


def _content_key(path: str, sample_rate: int, channels: int) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}:{sample_rate}:{channels}:".encode())
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 18):
                h.update(chunk)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file; re-run the index stage (dvc repro index) or restore it") from None
    return h.hexdigest()[:32]


def _file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1024 if soft == resource.RLIM_INFINITY else max(8, min(1024, soft // 4))


def _open(info: StemInfo):
    """An open file of a stem: its cached raw float32 copy (resampled stems) or the audio file itself."""
    return open(info.raw, "rb") if info.raw else sf.SoundFile(info.path)


class StemStore:
    """Training stems at the working rate and channel count, read on demand.

    Args:
        paths: stem files.
        sample_rate, channels: the rate and channel count to read them at (converted on read).
        silence_db: crops quieter than this (RMS dBFS) count as silent.
        cache: the stem cache folder (default: :func:`selfrefine.paths.stem_cache`).
        threads: threads that hash and scan uncached stems (default: up to 8).
    """

    def __init__(
        self,
        paths: Sequence[str],
        sample_rate: int,
        channels: int,
        silence_db: float,
        cache: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.silence_db = silence_db
        self._frame = sample_rate // 4
        self._cache = Path(cache) if cache is not None else stem_cache()
        self._cache.mkdir(parents=True, exist_ok=True)
        threads = threads or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            self.stems: list[StemInfo] = list(pool.map(self._info, [str(p) for p in paths]))
        self._open_files = _file_limit()
        self._files: OrderedDict[int, object] = OrderedDict()
        self._pid = os.getpid()

    # -- metadata, computed once per file content ------------------------------------------------

    def _info(self, path: str) -> StemInfo:
        key = _content_key(path, self.sample_rate, self.channels)
        meta, levels, raw = self._cache / f"{key}.json", self._cache / f"{key}.levels.npy", self._cache / f"{key}.f32"
        cached = self._cached(path, key, meta, levels, raw)
        if cached is not None:
            return cached
        audio, rate = decode(path)
        audio = to_channels(audio, self.channels)
        resampled = rate != self.sample_rate
        if resampled:
            audio = resample(audio, rate, self.sample_rate)
            with atomic_path(raw) as tmp:
                np.ascontiguousarray(audio.T, dtype=np.float32).tofile(tmp)
        frame_db = frame_levels(audio, self._frame)
        with atomic_path(levels) as tmp, open(tmp, "wb") as f:
            np.save(f, frame_db)
        sums = {"levels_sha256": _sha256(levels), "raw_sha256": _sha256(raw) if resampled else None}
        with atomic_path(meta) as tmp:
            Path(tmp).write_text(json.dumps({"path": path, "frames": audio.shape[1], "resampled": resampled, **sums}))
        return StemInfo(path, key, audio.shape[1], frame_db, str(raw) if resampled else None)

    def _cached(self, path: str, key: str, meta: Path, levels: Path, raw: Path) -> StemInfo | None:
        """A stem's cache entry, checked whole: ``None`` (rebuild it) when a file is missing, truncated or
        garbled (unparsable metadata, a level array of the wrong length or type, raw frames of the wrong size)."""
        if not (meta.is_file() and levels.is_file()):
            return None
        try:
            m = json.loads(meta.read_text())
            frames, resampled = int(m["frames"]), bool(m["resampled"])
            if _sha256(levels) != m["levels_sha256"]:
                return None
            frame_db = np.load(levels, allow_pickle=False)
            if resampled and not (raw.is_file() and _sha256(raw) == m["raw_sha256"]):
                return None
        except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError):
            return None
        if frames < 1 or frame_db.shape != (max(1, frames // self._frame),) or frame_db.dtype.kind != "f":
            return None
        if resampled and raw.stat().st_size != frames * self.channels * 4:
            return None
        return StemInfo(path, key, frames, frame_db, str(raw) if resampled else None)

    def __len__(self) -> int:
        return len(self.stems)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()  # open files do not travel to worker processes
        return state

    def digest(self) -> str:
        """A digest of every stem's content (so a resumed training run provably saw the same stems)."""
        return hashlib.sha256(" ".join(s.key for s in self.stems).encode()).hexdigest()[:16]

    def subset(self, indices: Sequence[int]) -> StemStore:
        """A store of stems ``indices`` of this one (same cache, settings and stem metadata; no files open)."""
        part = copy.copy(self)
        part.stems = [self.stems[i] for i in indices]
        part._files, part._pid = OrderedDict(), os.getpid()
        return part

    def frames(self, i: int) -> int:
        """Length of stem ``i`` in samples at the working rate."""
        return self.stems[i].frames

    def is_silent(self, i: int) -> bool:
        """Whether stem ``i`` has no frame above the silence level."""
        return bool(np.all(self.stems[i].levels < self.silence_db))

    # -- reading ---------------------------------------------------------------------------------

    def _file(self, i: int):
        if os.getpid() != self._pid:  # a forked worker: never share the parent's file positions
            self._files, self._pid = OrderedDict(), os.getpid()
        f = self._files.pop(i, None)
        if f is None:
            f = _open(self.stems[i])
            while len(self._files) >= self._open_files:
                self._files.popitem(last=False)[1].close()
        self._files[i] = f
        return f

    def read(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of stem ``i``, ``(channels, stop - start)`` float32 at the working rate.

        A whole-stem read (no ``start``/``stop``) opens its own file and is safe from several threads.
        """
        info = self.stems[i]
        if start == 0 and stop is None:
            with _open(info) as f:
                return self._read(f, info, 0, info.frames)
        stop = info.frames if stop is None else min(stop, info.frames)
        return self._read(self._file(i), info, start, stop)

    def _read(self, f, info: StemInfo, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        if info.raw:
            f.seek(start * self.channels * 4)
            data = np.fromfile(f, dtype=np.float32, count=count * self.channels).reshape(-1, self.channels)
        else:
            f.seek(start)
            data = f.read(count, dtype="float32", always_2d=True)
        if data.shape[0] != count:
            raise AudioError(f"{info.path}: shorter than when it was indexed; re-run the index stage (dvc repro index)")
        return to_channels(np.ascontiguousarray(data.T), self.channels)

    def crop_start(self, i: int, length: int, rng: np.random.Generator, tries: int = 8) -> int:
        """Draw where a ``length``-sample crop of stem ``i`` starts, preferring one that is not silent.

        For a stem shorter than ``length``, the draw is where the stem sits in the zero-padded crop.
        """
        n, levels = self.stems[i].frames, self.stems[i].levels
        if n <= length:
            return int(rng.integers(0, length - n + 1))
        start = 0
        for _ in range(tries):
            start = int(rng.integers(0, n - length + 1))
            first, last = start // self._frame, (start + length) // self._frame
            if np.any(levels[first : max(last, first + 1)] >= self.silence_db):
                break
        return start

    def render(self, i: int, start: int, length: int) -> np.ndarray:
        """The ``(channels, length)`` crop of stem ``i`` that :meth:`crop_start` drew."""
        n = self.stems[i].frames
        if n <= length:
            out = np.zeros((self.channels, length), dtype=np.float32)
            out[:, start : start + n] = self.read(i)
            return out
        return self.read(i, start, start + length)

    def crop(self, i: int, length: int, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
        """A random ``(channels, length)`` crop of stem ``i``, preferring one that is not silent.

        Shorter stems are zero-padded at a random position.
        """
        return self.render(i, self.crop_start(i, length, rng, tries), length)

    def windows(self, i: int, length: int, hop: int) -> np.ndarray:
        """Every loud ``length``-sample window of stem ``i`` with hop ``hop`` (:func:`loud_windows`)."""
        return loud_windows(self.read(i), length, hop, self.silence_db)
