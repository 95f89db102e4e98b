"""Separate the clean test songs with a trained separator and score them with SDR.

Songs are separated in overlapping chunks with ``demucs.apply.apply_model`` (triangular overlap-add,
so long real tracks fit in memory) and scored per source with museval's BSSEval v4 SDR (1 s frames,
median over frames per track; then median and mean over tracks, the SiSEC/MUSDB convention) and the
SDX'23 global SDR (whole song; mean over songs).
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
from selfrefine.evaluation.metrics import bsseval_sdr, global_sdr, summarize_tracks

log = logging.getLogger(__name__)


@torch.no_grad()
def separate(model: nn.Module, mix: np.ndarray, overlap: float) -> np.ndarray:
    """``(channels, samples)`` mixture -> ``(4, channels, samples)`` estimates.

    Chunks of the model's own ``segment`` seconds (its training-time context) are overlap-added with
    triangular weights; ``overlap`` is the shared fraction of neighbouring chunks.
    """
    wave = torch.from_numpy(np.ascontiguousarray(mix))[None]
    out = apply_model(model, wave, shifts=0, split=True, overlap=overlap, progress=False, device=device())
    return out[0].numpy()


def evaluate_separator(
    model: nn.Module,
    songs: dict[str, dict[str, str]],
    sample_rate: int,
    channels: int,
    overlap: float,
    use_museval: bool,
    estimates_dir: Path | None = None,
) -> dict:
    """Score ``model`` on every test song.

    Args:
        model: a separator with ``sources``, ``samplerate``, ``audio_channels``, ``segment`` attributes.
        songs: ``{song: {class: path}}`` clean test stems; the mixture is their sum.
        sample_rate, channels: working format.
        overlap: chunk overlap of :func:`separate`.
        use_museval: also compute museval BSSEval v4 SDR (slower).
        estimates_dir: if given, separated audio is written to ``<dir>/<song>/<class>.wav``.

    Returns:
        ``{"sdr": summary | None, "global_sdr": summary, "per_song": {...}, "seconds": {...}}`` with
        summaries from :func:`selfrefine.metrics.summarize_tracks`.
    """
    per_song: dict[str, dict] = {}
    global_rows, museval_rows = [], []
    t_sep = t_global = t_museval = 0.0
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
        if use_museval:
            m = bsseval_sdr(reference, estimate, sample_rate)
            museval_rows.append(m)
            row["sdr"] = dict(zip(CLASSES, m.tolist()))
        t3 = time.perf_counter()
        t_sep, t_global, t_museval = t_sep + t1 - t0, t_global + t2 - t1, t_museval + t3 - t2
        per_song[song] = row
        if estimates_dir is not None:
            for c, audio in zip(CLASSES, estimate):
                write_audio(estimates_dir / song / f"{c}.wav", audio, sample_rate)
        if (n + 1) % max(1, len(songs) // 5) == 0:
            log.info("evaluate: %d/%d songs", n + 1, len(songs))
    return {
        "sdr": summarize_tracks(np.stack(museval_rows), list(CLASSES)) if use_museval else None,
        "global_sdr": summarize_tracks(np.stack(global_rows), list(CLASSES)),
        "songs": len(songs),
        "per_song": per_song,
        "seconds": {"separate": t_sep, "global_sdr": t_global, "museval": t_museval},
    }
