"""Source separators (Demucs v3 = ``demucs.hdemucs.HDemucs``, X-UMX = :class:`selfrefine.xumx.CrossUMX`)
and their training on per-class pools built from a label table.

Pool policy (``separate.pool``):

- ``single`` (default): a stem joins the pool of class ``c`` when its label set is exactly ``{c}``;
  stems with several instruments or none are left out, so no target ever holds another source.
- ``named``: a stem joins the pool of its file-name class when its label set contains that class
  (keeps merged stems, whose extra instrument then leaks into the target).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfrefine import CLASSES
from selfrefine.audio import samples
from selfrefine.data import LabelledStem, StemStore, split_songs
from selfrefine.metrics import global_sdr
from selfrefine.mixing import SourceMixer
from selfrefine.training import LoopConfig, LoopResult, fit, fingerprint, model_device, open_live
from selfrefine.xumx import xumx_loss

log = logging.getLogger(__name__)

def model_kwargs(block: dict[str, Any], sample_rate: int, channels: int, segment_seconds: float) -> dict[str, Any]:
    """A separator's constructor kwargs: its params block plus what the data and training decide."""
    return {**block, "sources": list(CLASSES), "audio_channels": channels, "samplerate": sample_rate,
            "segment": segment_seconds}


def build_pools(stems: list[LabelledStem], policy: str, among: list[int] | None = None) -> dict[str, list[int]]:
    """``{class: [stem index, ...]}`` from label sets under ``policy`` (see module docstring).

    Args:
        stems: the label table's stems.
        policy: ``single`` or ``named``.
        among: only these stem indices (default: all).
    """
    pools: dict[str, list[int]] = {c: [] for c in CLASSES}
    for i in range(len(stems)) if among is None else among:
        s = stems[i]
        if policy == "single" and len(s.labels) == 1:
            pools[next(iter(s.labels))].append(i)
        elif policy == "named" and s.stem in s.labels:
            pools[s.stem].append(i)
    return pools


def demucs_loss(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Demucs's L1 waveform loss: mix ``(B, C, T)``, sources ``(B, 4, C, T)`` -> scalar."""
    return F.l1_loss(model(mix), sources)


LOSSES = {"demucs": demucs_loss, "xumx": xumx_loss}


def train_separator(
    name: str,
    model: nn.Module,
    kwargs: dict[str, Any],
    stems: list[LabelledStem],
    store: StemStore,
    pool_policy: str,
    train_params,
    seed: int,
    checkpoint: Path,
    live_dir: Path,
    run_key: str,
) -> tuple[LoopResult, dict[str, int]]:
    """Train separator ``name`` (``demucs`` or ``xumx``) on random mixes of the label table's pools.

    Args:
        name: which separator (selects the loss).
        model: the freshly built model (trained in place).
        kwargs: its constructor kwargs (part of the run fingerprint).
        stems: the label table's stems (``store`` holds their audio, same order).
        store: stem audio.
        pool_policy: ``single`` or ``named``.
        train_params: :class:`selfrefine.config.SeparatorTrainParams`.
        seed: random seed.
        checkpoint: resumable training state.
        live_dir: dvclive folder for the curves.
        run_key: digest of the label table and the stems' audio.

    Validation examples are mixed from the pools of held-out songs (``val_fraction``), never trained on.

    Returns:
        The training history and the training pool sizes.
    """
    torch.manual_seed(seed)
    tp = train_params
    train_idx, val_idx = split_songs(stems, tp.val_fraction, seed)
    pools = build_pools(stems, pool_policy, train_idx)
    segment = samples(tp.segment_seconds, store.sample_rate)
    mixer = SourceMixer(store, pools, segment, tp.gain_db, samples(tp.shift_seconds, store.sample_rate), seed + 1)
    val_pools = build_pools(stems, pool_policy, val_idx)
    val_mix, val_sources = SourceMixer(store, val_pools, segment, 0.0, 0, seed + 2).batch(tp.val_examples)
    loss = LOSSES[name]

    def validate(m: nn.Module) -> dict[str, float]:
        losses, sdrs = [], []
        for i in range(0, len(val_mix), 8):
            mix, sources = val_mix[i : i + 8].to(model_device(m)), val_sources[i : i + 8].to(model_device(m))
            losses.append(float(loss(m, mix, sources)) * len(mix))
            sdrs += [global_sdr(r.cpu().numpy(), e.cpu().numpy()) for r, e in zip(sources, m(mix))]
        sdr = np.mean(sdrs, axis=0)
        return {"val_loss": sum(losses) / len(val_mix), "val_sdr": float(sdr.mean()),
                **{f"val_sdr_{c}": float(v) for c, v in zip(CLASSES, sdr)}}

    config = LoopConfig(steps=tp.steps, batch_size=tp.batch_size, lr=tp.lr, grad_clip=tp.grad_clip,
                        eval_every=tp.checkpoint_every, checkpoint_every=tp.checkpoint_every, name=f"train-{name}")
    run_id = fingerprint(kwargs, asdict(tp), pool_policy, seed, store.silence_db, run_key)
    live = open_live(live_dir)
    result = fit(model, mixer, loss, validate, config, checkpoint, run_id, live)
    live.end()
    return result, {c: len(p) for c, p in pools.items()}
