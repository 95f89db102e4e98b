"""BSSEval v4 SDR exactly as museval computes it, batched in torch (CPU or GPU).

museval's v4 (``museval.evaluate(..., mode="v4")``, the SiSEC 2018 / MUSDB18 convention) decomposes
each estimated source image ``ŝ`` over 1 s windows as ``ŝ = s + e_spat + e_interf + e_artif`` with
time-invariant distortion filters (512 taps) fitted once on the whole track, and reports
``SDR = 10 log10(‖s‖² / ‖e_spat + e_interf + e_artif‖²)`` per window. Its artefact term is defined
as what the other three leave over, ``e_artif = ŝ - s - e_spat - e_interf``, so the three error terms
always sum to ``ŝ - s``: the filters cancel, and a window's SDR is ``10 log10(‖s‖² / ‖ŝ - s‖²)`` over
that window's samples and channels. (The filters do matter for ISR, SIR and SAR, which this module
does not compute.) What remains to match museval is its framing and its NaN/inf rules:

- windows of ``window`` samples every ``hop`` samples; a track no longer than one window is one
  window; otherwise ``(N - window + hop) // hop`` windows, so a last partial window is dropped;
- a window where any reference *or* estimated source is silent (its channel sum is 0 at every sample)
  is NaN for every source (so a source silent throughout makes every window NaN);
- a window whose error is exactly 0 is +inf.

Everything runs in float64, as museval does; results agree with museval to within floating-point
rounding of its projections (see ``tests/test_bsseval.py`` and ``benchmarks/sdr.py``).
"""

from __future__ import annotations

import numpy as np
import torch


def window_count(samples: int, window: int, hop: int) -> int:
    """museval's number of windows for a track of ``samples`` samples."""
    return 1 if window >= samples else (samples - window + hop) // hop


def _frames(x: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """``(S, C, N)`` -> ``(S, C, windows, length)`` (one window of all N samples for a short track)."""
    if window >= x.shape[-1]:
        return x[:, :, None, :]
    return x.unfold(-1, window, hop)


def sdr_frames(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    window: int,
    hop: int,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Per-window BSSEval v4 SDR of every source, as ``museval.evaluate(..., mode="v4")`` returns it.

    Args:
        reference: ``(S, C, N)`` true sources.
        estimate: ``(S, C, N)`` estimated sources.
        window, hop: window and hop in samples (museval's ``win`` and ``hop``; 1 s each by convention).
        device: where to compute (default: the reference's device for a tensor, else the CPU).

    Returns:
        ``(S, windows)`` float64 SDR in dB; NaN in windows where some source is silent, +inf where the
        estimate equals the reference exactly.

    Raises:
        ValueError: shapes differ or are not ``(S, C, N)`` with N > 0, or window/hop are not positive.
    """
    ref = torch.as_tensor(reference).to(device=device, dtype=torch.float64)
    est = torch.as_tensor(estimate).to(device=ref.device, dtype=torch.float64)
    if ref.ndim != 3 or ref.shape != est.shape or ref.shape[-1] == 0:
        raise ValueError(
            f"reference and estimate must both be (sources, channels, samples) with samples > 0; "
            f"got {tuple(ref.shape)} and {tuple(est.shape)}"
        )
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    ref_f, est_f = _frames(ref, window, hop), _frames(est, window, hop)
    signal = ref_f.square().sum(dim=(1, 3))  # (S, windows)
    error = (est_f - ref_f).square().sum(dim=(1, 3))
    silent = (ref_f.sum(dim=1) == 0).all(dim=-1).any(dim=0) | (est_f.sum(dim=1) == 0).all(dim=-1).any(dim=0)
    sdr = 10 * torch.log10(signal / error)  # error 0 (and signal > 0) gives +inf, as museval's _safe_db
    sdr[:, silent] = torch.nan
    return sdr.cpu().numpy()


def sdr(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """BSSEval v4 SDR per source: the median over 1 s windows, ignoring NaN windows (SiSEC 2018).

    Returns:
        ``(S,)`` float64 dB; NaN for a source whose windows are all NaN.
    """
    frames = sdr_frames(reference, estimate, int(sample_rate), int(sample_rate), device)
    out = np.full(frames.shape[0], np.nan)
    for i, row in enumerate(frames):
        kept = row[~np.isnan(row)]
        if kept.size:
            out[i] = np.median(kept)
    return out
