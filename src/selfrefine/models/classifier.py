"""Multi-label instrument classifier: a timm ConvNeXt (randomly initialised) on log-mel spectrograms."""

from __future__ import annotations

import numpy as np
import timm
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.devices import model_device
from selfrefine.models.features import LogMel


class InstrumentClassifier(nn.Module):
    """ConvNeXt (``timm``, randomly initialised) over a log-mel spectrogram; four sigmoid outputs.

    Args:
        variant: timm model name, e.g. ``convnext_atto`` (3.4 M parameters) or ``convnext_tiny``.
        sample_rate: input rate in Hz.
        n_mels: mel bands.
        n_fft: STFT size.
        hop_length: STFT hop.
        drop_path_rate: stochastic depth.
    """

    def __init__(
        self,
        variant: str = "convnext_atto",
        sample_rate: int = 16000,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 256,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.features = LogMel(sample_rate, n_mels, n_fft, hop_length)
        self.backbone = timm.create_model(
            variant, pretrained=False, in_chans=1, num_classes=len(CLASSES), drop_path_rate=drop_path_rate
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` waveform -> ``(batch, 4)`` logits in :data:`CLASSES` order."""
        return self.backbone(self.features(wave))


class FoldEnsemble(nn.Module):
    """The ``folds`` classifiers of out-of-fold refinement (``refine.folds``): member ``j`` was mix-trained
    on every song but those of fold ``j``, which it alone relabels. As one model it averages the members'
    logits (what the round's classifier is scored with on clean mixtures and what ``audit`` uses).

    Args:
        folds: number of members (>= 2).
        **kwargs: :class:`InstrumentClassifier` kwargs, the same for every member.
    """

    def __init__(self, folds: int = 2, **kwargs) -> None:
        super().__init__()
        self.members = nn.ModuleList(InstrumentClassifier(**kwargs) for _ in range(folds))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, 4)``: the members' mean logits."""
        return torch.stack([m(wave) for m in self.members]).mean(dim=0)


@torch.no_grad()
def predict(model: nn.Module, waves: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """``(n, channels, time)`` -> ``(n, 4)`` probabilities, batched on the model's device."""
    model.eval()
    device = model_device(model)
    out = [torch.sigmoid(model(waves[i : i + batch_size].to(device))).cpu() for i in range(0, len(waves), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(CLASSES)), dtype=np.float32)


MODEL = InstrumentClassifier
VARIANTS = (FoldEnsemble,)
"""Other classes a classifier checkpoint may hold (its ``class`` field)."""
