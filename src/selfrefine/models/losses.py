"""Waveform losses any separator can train with: ``(model, mix (B, C, T), sources (B, S, C, T)) -> scalar``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def l1(model: nn.Module, mix: Tensor, sources: Tensor) -> Tensor:
    """Mean absolute error of the estimated waveforms (Demucs's loss)."""
    return F.l1_loss(model(mix), sources)


def mse(model: nn.Module, mix: Tensor, sources: Tensor) -> Tensor:
    """Mean squared error of the estimated waveforms."""
    return F.mse_loss(model(mix), sources)
