"""Separate the clean test songs with a trained separator and score them with SDR.

Songs are separated in overlapping chunks with ``demucs.apply.apply_model`` (triangular overlap-add,
so long real tracks fit in memory) and scored per source with BSSEval v4 SDR (museval's numbers,
computed by :mod:`selfrefine.evaluation.bsseval`; 1 s frames, median over frames per track; then median
and mean over tracks, the SiSEC/MUSDB convention) and the SDX'23 global SDR (whole song; mean over
songs). museval itself can run beside it as a cross-check (``evaluate.museval_check``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from demucs.apply import apply_model
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.audio import read_audio, write_audio
from selfrefine.devices import device
from selfrefine.evaluation import bsseval as bsseval_v4
from selfrefine.evaluation.metrics import bsseval_sdr, global_sdr, summarize_tracks

log = logging.getLogger(__name__)


@torch.no_grad()
def separate(model: nn.Module, mix: np.ndarray, overlap: float, progress: bool = False) -> np.ndarray:
    """``(channels, samples)`` mixture -> ``(4, channels, samples)`` estimates.

    Chunks of the model's own ``segment`` seconds (its training-time context) are overlap-added with
    triangular weights; ``overlap`` is the shared fraction of neighbouring chunks. ``progress`` shows a
    bar over the chunks.
    """
    wave = torch.from_numpy(np.ascontiguousarray(mix))[None]
    out = apply_model(model, wave, shifts=0, split=True, overlap=overlap, progress=progress, device=device())
    return out[0].numpy()


def evaluate_separator(
    model: nn.Module,
    songs: dict[str, dict[str, str]],
    sample_rate: int,
    channels: int,
    overlap: float,
    bsseval: bool,
    museval_check: bool = False,
    estimates_dir: Path | None = None,
) -> dict:
    """Score ``model`` on every test song.

    Args:
        model: a separator with ``sources``, ``samplerate``, ``audio_channels``, ``segment`` attributes.
        songs: ``{song: {class: path}}`` clean test stems; the mixture is their sum.
        sample_rate, channels: working format.
        overlap: chunk overlap of :func:`separate`.
        bsseval: also compute BSSEval v4 SDR (:mod:`selfrefine.evaluation.bsseval`, museval's numbers).
        museval_check: also run museval itself on every song and report the largest difference (slow).
        estimates_dir: if given, separated audio is written to ``<dir>/<song>/<class>.wav``.

    Returns:
        ``{"sdr": summary | None, "global_sdr": summary, "per_song": {...}, "seconds": {...}}`` with
        summaries from :func:`selfrefine.evaluation.metrics.summarize_tracks`, and with ``museval_check``
        ``"museval_max_abs_diff_db"``.
    """
    per_song: dict[str, dict] = {}
    global_rows, bsseval_rows = [], []
    seconds = {"separate": 0.0, "global_sdr": 0.0, "bsseval": 0.0, "museval": 0.0}
    largest_diff = 0.0
    for n, (song, paths) in enumerate(sorted(songs.items())):
        refs = [read_audio(paths[c], sample_rate, channels) for c in CLASSES]
        length = min(r.shape[1] for r in refs)
        reference = np.stack([r[:, :length] for r in refs])
        t0 = time.perf_counter()
        estimate = separate(model, reference.sum(axis=0), overlap)
        t1 = time.perf_counter()
        g = global_sdr(reference, estimate)
        t2 = time.perf_counter()
        row = {"global_sdr": dict(zip(CLASSES, g.tolist()))}
        global_rows.append(g)
        if bsseval:
            m = bsseval_v4.sdr(reference, estimate, sample_rate, device())
            bsseval_rows.append(m)
            row["sdr"] = dict(zip(CLASSES, m.tolist()))
        t3 = time.perf_counter()
        if museval_check:
            reference_sdr = bsseval_sdr(reference, estimate, sample_rate)
            both = ~(np.isnan(reference_sdr) & np.isnan(m))
            largest_diff = max(largest_diff, float(np.max(np.abs(reference_sdr - m)[both], initial=0.0)))
        t4 = time.perf_counter()
        for key, value in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            seconds[key] += value
        per_song[song] = row
        if estimates_dir is not None:
            for c, audio in zip(CLASSES, estimate):
                write_audio(estimates_dir / song / f"{c}.wav", audio, sample_rate)
        if (n + 1) % max(1, len(songs) // 5) == 0:
            log.info("evaluate: %d/%d songs", n + 1, len(songs))
    result = {
        "sdr": summarize_tracks(np.stack(bsseval_rows), list(CLASSES)) if bsseval else None,
        "global_sdr": summarize_tracks(np.stack(global_rows), list(CLASSES)),
        "songs": len(songs),
        "per_song": per_song,
        "seconds": seconds,
    }
    if museval_check:
        result["museval_max_abs_diff_db"] = largest_diff
        log.info("evaluate: BSSEval v4 SDR vs museval, largest difference %.2e dB", largest_diff)
    return result
