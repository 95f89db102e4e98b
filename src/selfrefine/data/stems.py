"""Training stems held in memory, with crops and windows that skip silence."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from selfrefine.data.audio import read_audio, rms_db


class StemStore:
    """Training stems held in memory, with crops that skip silence.

    Args:
        paths: stem files.
        sample_rate, channels: the rate and channel count to hold them at (converted on load).
        silence_db: crops quieter than this (RMS dBFS) count as silent.
    """

    def __init__(self, paths: Sequence[str], sample_rate: int, channels: int, silence_db: float) -> None:
        self._hold([read_audio(p, sample_rate, channels) for p in paths], sample_rate, channels, silence_db)

    @classmethod
    def from_audio(cls, audio: Sequence[np.ndarray], sample_rate: int, channels: int, silence_db: float) -> StemStore:
        """A store of audio already in memory (``(channels, samples)`` arrays at ``sample_rate``)."""
        store = cls.__new__(cls)
        store._hold(list(audio), sample_rate, channels, silence_db)
        return store

    def _hold(self, audio: list[np.ndarray], sample_rate: int, channels: int, silence_db: float) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.silence_db = silence_db
        self.audio = audio
        self._frame = sample_rate // 4
        self._frame_db = [self._frame_levels(a) for a in self.audio]

    def _frame_levels(self, audio: np.ndarray) -> np.ndarray:
        """RMS level (dBFS) of each quarter-second frame, ``(frames,)``."""
        n = audio.shape[1] // self._frame
        if n == 0:
            return np.array([rms_db(audio)])
        power = (
            np.square(audio[:, : n * self._frame], dtype=np.float64).reshape(audio.shape[0], n, -1).mean(axis=(0, 2))
        )
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
