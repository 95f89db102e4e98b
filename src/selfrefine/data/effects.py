"""Random audio effects on the stems of a mix-training mixture (the paper's random mixing applies effects).

Each stem of a mixture gets each effect with probability ``p`` (``classifier.train.effects``), with random
parameters; what a stem is does not change (a distorted bass is still bass), so labels stay as they are and
the classifier learns the classes across production styles, not one rendering of them. Every draw is made
by :func:`draw` with the mixer's generator (the plan); :func:`apply` only computes (in data-loader workers),
so batches and resumed runs stay exact. The effects are torchaudio's functional DSP (BSD) plus a synthetic
reverb:

- ``eq``: a peaking filter (``equalizer_biquad``), centre 80 Hz .. 0.4 x the rate (log-uniform), gain
  +/- 9 dB, Q 0.5 .. 2;
- ``distortion``: ``overdrive``, gain 5 .. 30 dB, colour 0 .. 40;
- ``reverb``: convolution with exponentially decaying noise (RT60 0.2 .. 1.2 s, the impulse response's noise
  seeded in the plan), wet share 0.1 .. 0.5;
- ``speed``: tape-speed change (resampling: pitch and tempo together) by a factor m / 50, m in 47 .. 53
  (0.94 .. 1.06; small integers keep the resampling filter short), cut or zero-padded to the crop length.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as F

EFFECTS = ("eq", "distortion", "reverb", "speed")

Effect = tuple[str, tuple[float, ...]]


def draw(rng: np.random.Generator, probability: float, sample_rate: int) -> tuple[Effect, ...]:
    """The effects one stem gets, in order, with their parameters (no draw at all when ``probability`` is 0)."""
    if probability <= 0:
        return ()
    chosen = []
    for name in EFFECTS:
        if rng.random() >= probability:
            continue
        if name == "eq":
            top = 0.4 * sample_rate
            centre = float(math.exp(rng.uniform(math.log(80.0), math.log(top))))
            chosen.append((name, (centre, float(rng.uniform(-9, 9)), float(rng.uniform(0.5, 2.0)))))
        elif name == "distortion":
            chosen.append((name, (float(rng.uniform(5, 30)), float(rng.uniform(0, 40)))))
        elif name == "reverb":
            chosen.append(
                (name, (float(rng.uniform(0.2, 1.2)), float(rng.uniform(0.1, 0.5)), float(rng.integers(2**31))))
            )
        else:
            chosen.append((name, (float(rng.integers(47, 54)),)))  # speed factor m / 50
    return tuple(chosen)


def apply(audio: np.ndarray, sample_rate: int, effects: tuple[Effect, ...]) -> np.ndarray:
    """``(channels, samples)`` float32 audio through ``effects`` (same shape; input unchanged)."""
    if not effects:
        return audio
    x = torch.from_numpy(np.ascontiguousarray(audio))
    length = x.shape[-1]
    for name, args in effects:
        if name == "eq":
            x = F.equalizer_biquad(x, sample_rate, args[0], args[1], args[2])
        elif name == "distortion":
            peak = float(x.abs().max())
            if peak > 0:  # overdrive saturates by absolute level: drive the normalised stem, restore its level
                x = F.overdrive(x / peak, args[0], args[1]) * peak
        elif name == "reverb":
            x = _reverb(x, sample_rate, rt60=args[0], wet=args[1], seed=int(args[2]))
        else:
            x = _speed(x, args[0], length)
    return torch.nan_to_num(x).to(torch.float32).numpy()


def _reverb(x: torch.Tensor, sample_rate: int, rt60: float, wet: float, seed: int) -> torch.Tensor:
    n = max(1, int(rt60 * sample_rate))
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(n).astype(np.float32))
    ir = noise * torch.exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir = ir / ir.norm().clamp_min(1e-8)
    tail = F.fftconvolve(x, ir.expand(x.shape[0], -1))[..., : x.shape[-1]]
    return (1 - wet) * x + wet * tail


def _speed(x: torch.Tensor, m: float, length: int) -> torch.Tensor:
    y = F.resample(x, int(m), 50)  # played m / 50 times as fast: 50 / m as many samples at the same rate
    if y.shape[-1] >= length:
        return y[..., :length]
    return torch.nn.functional.pad(y, (0, length - y.shape[-1]))
