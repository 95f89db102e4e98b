"""Log-mel spectrogram front end of the instrument classifier (torchaudio transforms)."""

from __future__ import annotations

import torch
import torchaudio.transforms as T
from torch import nn

from selfrefine import distributed


class LogMel(nn.Module):
    """Waveform to log-mel spectrogram, channels averaged.

    Args:
        sample_rate: input rate in Hz.
        n_mels: mel bands.
        n_fft: STFT size.
        hop_length: STFT hop.
    """

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, 1, n_mels, frames)`` natural-log power."""
        mel = self.mel(wave.mean(dim=1))
        return torch.log(mel + 1e-6).unsqueeze(1)


class GainEQ(nn.Module):
    """Light training augmentation of mixtures: random gain and a random first-order tilt EQ.

    Identity in eval mode. Works on ``(batch, channels, time)``.

    Args:
        gain_db: gain uniform in +/- this many dB.
        eq_probability: chance that a mixture gets a random low- or high-shelf-like tilt.
    """

    def __init__(self, gain_db: float, eq_probability: float) -> None:
        super().__init__()
        self.gain_db = gain_db
        self.eq_probability = eq_probability

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return wave
        # Drawn on the CPU for the global batch, this rank keeping its part (distributed.share): the same draws
        # on every device and for any number of ranks.
        world = distributed.world_size()
        draw = torch.rand(3, wave.shape[0] * world, 1, 1)[:, distributed.share(wave.shape[0] * world)]
        draw = draw.to(wave.device)
        wave = wave * 10 ** ((draw[0] * 2 - 1) * self.gain_db / 20)
        # A 4-tap moving average gives a low-passed copy; mixing it in or subtracting it tilts the spectrum.
        eq = draw[1] < self.eq_probability
        amount = (draw[2] * 2 - 1) * 0.8
        smooth = torch.cumsum(wave, dim=-1)
        smooth = (smooth[..., 4:] - smooth[..., :-4]) / 4
        smooth = nn.functional.pad(smooth, (2, 2))
        return torch.where(eq, wave + amount * (smooth - wave), wave)
