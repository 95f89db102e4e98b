"""``selfrefine separate``: split songs into stems with a trained separator.

Any rate and channel count in: each file is converted to the model's (torchaudio's sinc resampler; stereo
averaged to mono or mono repeated to stereo; more channels averaged), separated in overlapping chunks of
the model's training segment (as ``evaluate`` separates, with a progress bar, on the GPU when there is one),
and each source converted back to the file's own rate, channel count and length and written as
``<out>/<file name>/<source>.wav`` (32-bit float, never clipped), with a summary in ``<out>/separate.json``. With ``consistent``, the part of the
mixture the model left out is shared equally among the sources before converting back (mixture
consistency), so the stems sum to the model-rate version of the input.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from selfrefine.data.audio import decode, resample, to_channels, write_audio
from selfrefine.errors import UserError
from selfrefine.outputs import write_json

log = logging.getLogger(__name__)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(|reference|^2 / |reference - estimate|^2)`` in dB (inf when equal)."""
    error = float(np.sum(np.square(reference - estimate, dtype=np.float64)))
    power = float(np.sum(np.square(reference, dtype=np.float64)))
    return float("inf") if error == 0 else 10 * np.log10(max(power, 1e-20) / error)


def separate_files(files: list[Path], model_path: Path, out: Path, overlap: float, consistent: bool) -> list[dict]:
    """Separate each of ``files`` with the separator checkpoint at ``model_path``; see the module docstring.

    Every file is checked before any is separated, so a bad one stops the run with nothing written.

    Returns:
        Per file ``{"file", "out", "seconds", "rate", "channels", "wall_seconds", "sum_snr_db",
        "sum_snr_band_db"}``: how close the sum of the written stems is to the input, over the full band
        and over the band the model sees (the input converted to the model's format and back).
    """
    from selfrefine.devices import device
    from selfrefine.evaluation.separation import separate
    from selfrefine.models.checkpoints import load_checkpoint

    names = [f.stem for f in files]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UserError(f"two inputs are named '{clash[0]}' and would share {out / clash[0]}; rename one")
    for f in files:
        audio, rate = decode(f)  # decoded once to check it, then dropped: memory holds one song at a time
        log.info("separate: %s, %.1f s at %d Hz, %d channels", f, audio.shape[1] / rate, rate, audio.shape[0])
        del audio
    model, package = load_checkpoint(model_path)
    if package["model"] == "classifier":
        raise UserError(f"{model_path}: a classifier, not a separator; pass models/<separator>/model.pt")
    model.to(device())
    rate, channels = int(model.samplerate), int(model.audio_channels)
    results = []
    for f in files:
        began = time.perf_counter()
        audio, file_rate = decode(f)
        mix = resample(to_channels(audio, channels), file_rate, rate)
        estimate = separate(model, mix, overlap, progress=True)
        if consistent:
            estimate = estimate + (mix - estimate.sum(axis=0)) / len(estimate)
        stems = {c: _back(s, file_rate, rate, audio.shape[0], audio.shape[1]) for c, s in zip(model.sources, estimate)}
        for c, s in stems.items():
            write_audio(out / f.stem / f"{c}.wav", s, file_rate)
        total = sum(stems.values())
        band = _back(mix, file_rate, rate, audio.shape[0], audio.shape[1])
        result = {
            "file": str(f),
            "out": str(out / f.stem),
            "seconds": round(audio.shape[1] / file_rate, 3),
            "rate": file_rate,
            "channels": audio.shape[0],
            "wall_seconds": round(time.perf_counter() - began, 2),
            "sum_snr_db": round(snr_db(audio, total), 2),
            "sum_snr_band_db": round(snr_db(band, total), 2),
        }
        results.append(result)
        log.info(
            "separate: %s -> %s/{%s}.wav in %.1f s; stems sum to the input at %.1f dB SNR (%.1f dB in the model's band)",
            f,
            result["out"],
            ",".join(model.sources),
            result["wall_seconds"],
            result["sum_snr_db"],
            result["sum_snr_band_db"],
        )
    write_json(out / "separate.json", results)
    return results


def _back(source: np.ndarray, file_rate: int, rate: int, channels: int, length: int) -> np.ndarray:
    """A model-format signal in the file's rate, channel count and exact length."""
    audio = to_channels(resample(source, rate, file_rate), channels)
    if audio.shape[1] < length:
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
    return np.ascontiguousarray(audio[:, :length], dtype=np.float32)
