"""A separator written as a user would add one: one class, its losses; the test drops it into the package."""

import torch
from torch import nn

from selfrefine.models import losses


class TinyMask(nn.Module):
    """One convolution that predicts a mask per source.

    Args:
        sources, audio_channels, samplerate, segment: filled in by the pipeline (as for every separator).
        kernel_size: the convolution's width (its params block sets it).
    """

    def __init__(
        self, sources: list[str], audio_channels: int, samplerate: int, segment: float, kernel_size: int = 33
    ) -> None:
        super().__init__()
        self.sources, self.audio_channels, self.samplerate, self.segment = (
            list(sources),
            audio_channels,
            samplerate,
            segment,
        )
        self.net = nn.Conv1d(audio_channels, len(self.sources) * audio_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` mixture -> ``(B, S, C, T)`` estimates."""
        b, c, t = mix.shape
        return torch.sigmoid(self.net(mix)).view(b, len(self.sources), c, t) * mix[:, None]


MODEL = TinyMask
LOSSES = {"l1": losses.l1}
