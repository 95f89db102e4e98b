"""CrossNet-Open-Unmix (X-UMX) separator and its multi-domain combination loss.

Sawata, Uhlich, Takahashi and Mitsufuji, "All for one and one for all: improving music separation
by bridging networks", ICASSP 2021 (arXiv:2010.04228). Built from ``openunmix`` pieces (STFT,
magnitude, Wiener filter); one Open-Unmix branch per source, bridged by averaging the branches'
hidden features twice: before the LSTMs and before the decoders.

Shape letters: ``B`` batch, ``S`` sources, ``C`` audio channels, ``T`` samples, ``F`` frequency bins
(``n_fft // 2 + 1``), ``N`` STFT frames, ``H`` hidden size.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from openunmix.filtering import wiener
from openunmix.transforms import ComplexNorm, make_filterbanks
from torch import Tensor, nn

from selfrefine import CLASSES
from selfrefine.models import losses

WIENER_WINDOW_FRAMES = 300
"""Frames filtered jointly by the Wiener post-filter (as ``openunmix.model.Separator``); bounds memory."""

EPS = 1e-8
"""Regulariser of the weighted-SDR denominators."""


def max_bin_for(samplerate: int, n_fft: int, max_bin_hz: float | None) -> int:
    """Number of STFT bins whose centre frequency is at most ``max_bin_hz`` (all bins if None)."""
    nb_bins = n_fft // 2 + 1
    if max_bin_hz is None:
        return nb_bins
    bin_hz = samplerate / n_fft
    return min(nb_bins, int(max_bin_hz // bin_hz) + 1)


class _Branch(nn.Module):
    """One source's Open-Unmix layers, split where X-UMX bridges the branches.

    Args:
        nb_bins: output bins ``F``.
        max_bin: input bins the encoder sees (the lowest ``max_bin`` of ``F``).
        channels: audio channels ``C``.
        hidden_size: ``H``.
        nb_layers: LSTM layers.
        unidirectional: causal LSTM instead of a bidirectional one.
    """

    def __init__(
        self, nb_bins: int, max_bin: int, channels: int, hidden_size: int, nb_layers: int, unidirectional: bool
    ) -> None:
        super().__init__()
        self.max_bin = max_bin
        self.input_mean = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.fc1 = nn.Linear(max_bin * channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=hidden_size if unidirectional else hidden_size // 2,
            num_layers=nb_layers,
            bidirectional=not unidirectional,
            dropout=0.4 if nb_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, nb_bins * channels, bias=False)
        self.bn3 = nn.BatchNorm1d(nb_bins * channels)
        self.output_scale = nn.Parameter(torch.ones(nb_bins))
        self.output_mean = nn.Parameter(torch.ones(nb_bins))

    def encode(self, mag: Tensor) -> Tensor:
        """Normalised, cropped mixture magnitude ``(N, B, C, F)`` -> tanh features ``(N, B, H)``."""
        frames, batch, channels, _ = mag.shape
        x = (mag[..., : self.max_bin] + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(frames * batch, channels * self.max_bin)))
        return torch.tanh(x.reshape(frames, batch, -1))

    def recur(self, hidden: Tensor) -> Tensor:
        """LSTM over frames: ``(N, B, H)`` -> ``(N, B, H)``."""
        return self.lstm(hidden)[0]

    def decode(self, features: Tensor, channels: int) -> Tensor:
        """Bridged ``[encoder, LSTM]`` features ``(N, B, 2H)`` -> non-negative mask ``(N, B, C, F)``."""
        frames, batch, _ = features.shape
        x = F.relu(self.bn2(self.fc2(features.reshape(frames * batch, -1))))
        x = self.bn3(self.fc3(x)).reshape(frames, batch, channels, -1)
        return F.relu(x * self.output_scale + self.output_mean)


class CrossUMX(nn.Module):
    """X-UMX: Open-Unmix branches per source, bridged by feature averaging.

    Every constructor argument is a plain JSON value so ``CrossUMX(**kwargs)`` rebuilds a saved model.
    Exposes ``sources``, ``samplerate``, ``audio_channels``, ``segment`` and ``valid_length`` for
    ``demucs.apply.apply_model`` (chunked inference of whole songs).

    Args:
        sources: source names, in output order (``S`` of them).
        audio_channels: ``C``; each branch sees all channels (no downmix).
        samplerate: audio rate in Hz.
        n_fft: STFT size (Hann window of the same length).
        n_hop: STFT hop.
        hidden_size: ``H``; even unless ``unidirectional``.
        nb_layers: LSTM layers per branch.
        max_bin_hz: highest frequency the encoders see; None for all bins.
        unidirectional: causal LSTMs.
        wiener_iters: EM iterations of the multichannel Wiener post-filter in eval mode; 0 keeps the
            mixture phase (always the case in training mode).
        segment: seconds per chunk ``apply_model`` uses by default.
    """

    def __init__(
        self,
        sources: Sequence[str] = CLASSES,
        audio_channels: int = 2,
        samplerate: int = 44100,
        n_fft: int = 4096,
        n_hop: int = 1024,
        hidden_size: int = 512,
        nb_layers: int = 3,
        max_bin_hz: float | None = 16000.0,
        unidirectional: bool = False,
        wiener_iters: int = 0,
        segment: float = 6.0,
    ) -> None:
        super().__init__()
        if not unidirectional and hidden_size % 2:
            raise ValueError(f"hidden_size must be even for a bidirectional LSTM, got {hidden_size}")
        if wiener_iters > 0 and len(sources) < 2:
            raise ValueError("the Wiener post-filter needs at least two sources; set wiener_iters: 0")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.segment = segment
        self.n_fft = n_fft
        self.wiener_iters = wiener_iters
        self.stft, self.istft = make_filterbanks(
            n_fft=n_fft, n_hop=n_hop, center=True, sample_rate=samplerate, method="torch"
        )
        self.magnitude = ComplexNorm(mono=False)
        nb_bins = n_fft // 2 + 1
        max_bin = max_bin_for(samplerate, n_fft, max_bin_hz)
        self.branches = nn.ModuleList(
            _Branch(nb_bins, max_bin, audio_channels, hidden_size, nb_layers, unidirectional) for _ in self.sources
        )

    def valid_length(self, length: int) -> int:
        """Shortest input length >= ``length`` the STFT accepts (its reflect padding needs > ``n_fft/2``)."""
        return max(length, self.n_fft)

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Real-view STFT: ``(..., C, T)`` -> ``(..., C, F, N, 2)``."""
        lead = audio.shape[:-2]
        stft = self.stft(audio.reshape(-1, audio.shape[-2], audio.shape[-1]).contiguous())
        return stft.reshape(*lead, *stft.shape[1:])

    def estimate_magnitudes(self, mix_mag: Tensor) -> Tensor:
        """Bridged branches: mixture magnitude ``(B, C, F, N)`` -> source magnitudes ``(B, S, C, F, N)``."""
        x = mix_mag.permute(3, 0, 1, 2)
        encoded = [branch.encode(x) for branch in self.branches]
        bridge_lstm = torch.stack(encoded).mean(0)
        skip = [torch.cat([enc, branch.recur(bridge_lstm)], -1) for enc, branch in zip(encoded, self.branches)]
        bridge_dec = torch.stack(skip).mean(0)
        masks = torch.stack([branch.decode(bridge_dec, x.shape[2]) for branch in self.branches], 1)
        return masks.permute(2, 1, 3, 4, 0) * mix_mag.unsqueeze(1)

    def separate(self, mix: Tensor, use_wiener: bool = False) -> tuple[Tensor, Tensor]:
        """Separate and keep the magnitudes the frequency-domain loss needs.

        Args:
            mix: ``(B, C, T)`` with ``T > n_fft // 2``.
            use_wiener: Wiener post-filter (``wiener_iters`` EM steps) instead of the mixture phase.

        Returns:
            ``(magnitudes (B, S, C, F, N), audio (B, S, C, T))``.
        """
        if mix.shape[-1] <= self.n_fft // 2:
            raise ValueError(f"input of {mix.shape[-1]} samples is too short for n_fft={self.n_fft}")
        mix_stft = self.spectrogram(mix)
        est_mag = self.estimate_magnitudes(self.magnitude(mix_stft))
        if use_wiener:
            est_stft = _wiener_filter(est_mag, mix_stft, self.wiener_iters)
        else:
            est_stft = mixture_phase(est_mag, mix_stft)
        return est_mag, self.istft(est_stft, length=mix.shape[-1])

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)``, ``T > n_fft // 2`` -> ``(B, S, C, T)``; Wiener-filtered in eval mode if ``wiener_iters``."""
        return self.separate(mix, use_wiener=self.wiener_iters > 0 and not self.training)[1]


def mixture_phase(magnitudes: Tensor, mix_stft: Tensor) -> Tensor:
    """Give source magnitudes ``(B, S, C, F, N)`` the phase of the real-view ``(B, C, F, N, 2)`` mixture.

    Returns:
        Real-view source STFTs ``(B, S, C, F, N, 2)``.
    """
    angle = torch.atan2(mix_stft[..., 1], mix_stft[..., 0]).unsqueeze(1)
    return torch.stack([magnitudes * torch.cos(angle), magnitudes * torch.sin(angle)], -1)


def _wiener_filter(magnitudes: Tensor, mix_stft: Tensor, iterations: int) -> Tensor:
    """Multichannel Wiener filter per item and window of frames.

    Args:
        magnitudes: ``(B, S, C, F, N)`` source magnitudes.
        mix_stft: ``(B, C, F, N, 2)`` real-view mixture STFT.
        iterations: EM iterations of ``openunmix.filtering.wiener``.

    Returns:
        Real-view source STFTs ``(B, S, C, F, N, 2)``.
    """
    spec = magnitudes.permute(0, 4, 3, 2, 1)  # (B, N, F, C, S)
    mix = mix_stft.permute(0, 3, 2, 1, 4)  # (B, N, F, C, 2)
    frames = spec.shape[1]
    items = [
        torch.cat(
            [
                wiener(s[start : start + WIENER_WINDOW_FRAMES], m[start : start + WIENER_WINDOW_FRAMES], iterations)
                for start in range(0, frames, WIENER_WINDOW_FRAMES)
            ]
        )
        for s, m in zip(spec, mix)
    ]
    return torch.stack(items).permute(0, 5, 3, 2, 1, 4).contiguous()  # (B, N, F, C, 2, S) -> (B, S, C, F, N, 2)


def combination_loss(
    estimates: Tensor, targets: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor], combine: bool = True
) -> Tensor:
    """Average ``loss_fn`` over source subsets, comparing the sums of estimates and targets in each.

    With ``combine`` the subsets are all combinations of 1 .. S-1 of the ``S`` sources (just the single
    sources when ``S <= 2``), X-UMX's combination scheme; without it, only the single sources.

    Args:
        estimates: ``(B, S, ...)``.
        targets: same shape.
        loss_fn: maps two ``(B, ...)`` tensors to a scalar (or to ``(B,)``, one value per example).
        combine: use the combination scheme.

    Returns:
        Mean of ``loss_fn`` over the subsets (a scalar, or ``(B,)``).
    """
    nb_sources = estimates.shape[1]
    sizes = range(1, max(nb_sources - 1, 1) + 1) if combine else [1]
    subsets = [list(s) for size in sizes for s in itertools.combinations(range(nb_sources), size)]
    losses = [loss_fn(estimates[:, s].sum(1), targets[:, s].sum(1)) for s in subsets]
    return torch.stack(losses).mean(0)


def weighted_sdr_loss(estimate: Tensor, target: Tensor, mix: Tensor, per_example: bool = False) -> Tensor:
    """Weighted SDR loss of Choi et al. 2019 (arXiv:1903.03107), in ``[-1, 1]``; -1 is perfect.

    ``-a * cos(y, y_hat) - (1 - a) * cos(x - y, x - y_hat)`` with ``a = |y|^2 / (|y|^2 + |x - y|^2)``,
    cosines taken over time, averaged over every other axis.

    Args:
        estimate: ``y_hat`` of shape ``(..., T)``.
        target: ``y``, same shape.
        mix: ``x``, same shape.
        per_example: average over every axis but the first (``(B,)``) instead of to a scalar.

    Returns:
        Scalar loss (or ``(B,)``).
    """
    noise, noise_est = mix - target, mix - estimate
    target_energy, noise_energy = target.pow(2).sum(-1), noise.pow(2).sum(-1)
    alpha = target_energy / (target_energy + noise_energy + EPS)
    loss = -alpha * _cosine(estimate, target) - (1 - alpha) * _cosine(noise_est, noise)
    return loss.flatten(1).mean(1) if per_example else loss.mean()


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity over the last axis, safe for silent signals: ``(..., T)`` -> ``(...)``."""
    return (a * b).sum(-1) / (torch.sqrt(a.pow(2).sum(-1) + EPS) * torch.sqrt(b.pow(2).sum(-1) + EPS))


def xumx_loss(
    model: CrossUMX,
    mix: Tensor,
    sources: Tensor,
    mix_coef: float = 10.0,
    combine_sources: bool = True,
    reduce: bool = True,
) -> Tensor:
    """Multi-domain combination loss of X-UMX (mixture phase, no Wiener filter).

    ``L = CL(MSE on magnitudes) + mix_coef * (1 + CL(wSDR on waveforms))`` where ``CL`` averages over
    source subsets (:func:`combination_loss`); subset magnitudes and waveforms are sums over the
    subset, and the wSDR noise term uses ``mix`` minus the subset's target. The ``1 +`` makes the
    time term non-negative (0 for a perfect estimate), as in asteroid's X-UMX recipe.

    Args:
        model: the separator (its mode decides BatchNorm/dropout behaviour).
        mix: ``(B, C, T)`` mixture.
        sources: ``(B, S, C, T)`` targets.
        mix_coef: weight of the time-domain term.
        combine_sources: use the combination scheme; else single sources only.
        reduce: a scalar; ``False``: ``(B, 1)``, one value per example (subsets mix the sources, so
            they are not scored apart).

    Returns:
        Scalar loss (or ``(B, 1)``).
    """
    est_mag, est_audio = model.separate(mix)
    target_mag = model.magnitude(model.spectrogram(sources))
    if reduce:
        mse, wsdr = F.mse_loss, functools.partial(weighted_sdr_loss, mix=mix)
    else:
        mse = _per_example_mse
        wsdr = functools.partial(weighted_sdr_loss, mix=mix, per_example=True)
    freq_term = combination_loss(est_mag, target_mag, mse, combine_sources)
    time_term = 1 + combination_loss(est_audio, sources, wsdr, combine_sources)
    loss = freq_term + mix_coef * time_term
    return loss if reduce else loss[:, None]


def _per_example_mse(estimate: Tensor, target: Tensor) -> Tensor:
    return (estimate - target).pow(2).flatten(1).mean(1)


MODEL = CrossUMX
LOSSES = {"multidomain": xumx_loss, "l1": losses.l1, "mse": losses.mse}
