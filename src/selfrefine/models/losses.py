"""Waveform losses any separator can train with: ``(model, mix (B, C, T), sources (B, S, C, T)) -> scalar``.

Every separator loss also takes ``reduce=False`` and then returns its per-example, per-source values
``(B, S)`` (or ``(B, 1)`` where sources are not scored apart), whose mean is the scalar loss: what the
noise-robust loss truncation of :mod:`selfrefine.training.separation` ranks.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def l1(model: nn.Module, mix: Tensor, sources: Tensor, reduce: bool = True) -> Tensor:
    """Mean absolute error of the estimated waveforms (Demucs's loss)."""
    estimate = model(mix)
    return F.l1_loss(estimate, sources) if reduce else (estimate - sources).abs().flatten(2).mean(-1)


def mse(model: nn.Module, mix: Tensor, sources: Tensor, reduce: bool = True) -> Tensor:
    """Mean squared error of the estimated waveforms."""
    estimate = model(mix)
    return F.mse_loss(estimate, sources) if reduce else (estimate - sources).pow(2).flatten(2).mean(-1)
