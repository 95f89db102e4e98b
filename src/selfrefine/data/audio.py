"""Audio reading, validation and writing (soundfile for I/O, torchaudio for resampling).

Arrays are ``float32`` of shape ``(channels, samples)`` everywhere in the library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from scipy.io import wavfile

from selfrefine.errors import UserError
from selfrefine.outputs import atomic_path


class AudioError(UserError):
    """A stem that cannot be used; the message is one line naming the file and the fix."""


def read_audio(
    path: str | Path,
    sample_rate: int,
    channels: int,
    convert: bool = True,
) -> np.ndarray:
    """Read and validate a whole audio file.

    Args:
        path: file to read (any format libsndfile reads).
        sample_rate: rate the caller works at; other rates are resampled when ``convert``.
        channels: 1 or 2; mono is duplicated to stereo and stereo averaged to mono when ``convert``.
        convert: if False, a wrong rate or channel count is an :class:`AudioError`.

    Returns:
        ``(channels, samples)`` float32 array.

    Raises:
        AudioError: unreadable, empty, non-finite, or (with ``convert=False``) wrong rate/channels.
    """
    audio, rate = decode(path)
    if audio.shape[0] != channels:
        if not convert:
            raise AudioError(
                f"{path}: has {audio.shape[0]} channels, expected {channels}; convert it or set data.convert: true"
            )
        audio = to_channels(audio, channels)
    if rate != sample_rate:
        if not convert:
            raise AudioError(
                f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz; resample it or set data.convert: true"
            )
        audio = resample(audio, rate, sample_rate)
    return audio


MAX_SECONDS = 24 * 3600.0
"""The longest stem a file's header may claim: longer is read as a damaged header (a FLAC whose frame count was
garbled can claim weeks of audio, which reading would try to allocate)."""


RATES = (1000, 768000)
"""The sample rates a file may have; a header outside them is damaged (resampling from it could ask for any
amount of memory)."""


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """A whole file as it is: ``((channels, samples) float32, rate)``, checked to be usable audio.

    Raises:
        AudioError: missing, unreadable, empty or non-finite (one line naming the file and the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with sf.SoundFile(str(path)) as file:  # one open: the header is checked before the data is read
            if file.samplerate > 0 and file.frames / file.samplerate > MAX_SECONDS:
                raise AudioError(
                    f"{path}: its header claims {file.frames / file.samplerate / 3600:.0f} h of audio, more than "
                    f"{MAX_SECONDS / 3600:.0f} h: a damaged header; re-export it"
                )
            data, rate = file.read(dtype="float32", always_2d=True), file.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: unreadable audio ({str(err).splitlines()[0]}); convert it to WAV or FLAC") from None
    except MemoryError:
        raise AudioError(f"{path}: does not fit in memory as it is read; a damaged header? re-export it") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples); re-export it")
    if not RATES[0] <= rate <= RATES[1]:
        raise AudioError(f"{path}: sample rate {rate} Hz in its header, outside {RATES[0]}-{RATES[1]} Hz; re-export it")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples; re-export it")
    return np.ascontiguousarray(data.T), rate


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(c, n)`` audio to ``(channels, n)``: average down to mono, repeat mono up (more than two
    channels to stereo: their average on both)."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1 or audio.shape[0] > 2:
        audio = audio.mean(axis=0, keepdims=True)
    return np.repeat(audio, channels, axis=0)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample ``(c, n)`` audio from ``rate`` to ``target`` Hz with torchaudio's sinc resampler."""
    if rate == target:
        return audio
    return AF.resample(torch.from_numpy(audio), rate, target).numpy()


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``(channels, samples)`` audio as 32-bit float WAV, atomically.

    Float WAV keeps generated and corrupted stems bit-exact (a merged stem is exactly the sum of its
    parts) and never clips. Written by scipy, not libsndfile, whose float WAVs carry a PEAK chunk with
    the time of writing: the same audio gives the same file, so DVC's hashes do not change run to run.
    """
    if audio.ndim != 2:
        raise ValueError(f"expected (channels, samples) audio, got shape {audio.shape}")
    with atomic_path(path) as tmp:
        wavfile.write(tmp, sample_rate, np.ascontiguousarray(audio.T, dtype=np.float32))


def samples(seconds: float, sample_rate: int) -> int:
    """A duration in whole samples."""
    return int(round(seconds * sample_rate))


def rms_db(audio: np.ndarray) -> float:
    """Root-mean-square level of ``audio`` in dBFS (``-inf`` for digital silence)."""
    power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * np.log10(power) if power > 0 else float("-inf")
