"""Our BSSEval v4 SDR against museval itself, window by window."""

from __future__ import annotations

import museval
import numpy as np
import pytest
from scipy import signal

from selfrefine.data.synth import synthesize_song
from selfrefine.evaluation import bsseval

RATE = 8000
TOLERANCE_DB = 1e-9
"""Both compute in float64: on these signals they differ by under 3e-13 dB (README: 1.4e-14 dB on a real song).
A window framed one sample off, or an epsilon in a denominator, moves the SDR far more than this."""


def _museval_frames(reference: np.ndarray, estimate: np.ndarray, window: int) -> np.ndarray:
    """museval.evaluate's per-window SDR of ``(S, C, N)`` arrays."""
    frames, *_ = museval.evaluate(reference.transpose(0, 2, 1), estimate.transpose(0, 2, 1), win=window, hop=window)
    return np.asarray(frames, dtype=np.float64)


def _leaky_estimate(reference: np.ndarray, rng: np.random.Generator, leak: float = 0.2) -> np.ndarray:
    """Each source filtered, plus leakage of the others and noise: what a real separator gives."""
    b, a = signal.butter(2, 0.3)
    total = reference.sum(axis=0)
    estimate = signal.lfilter(b, a, reference, axis=-1) + leak * (total - reference)
    return estimate + 0.01 * rng.standard_normal(reference.shape)


def _assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
    assert np.max(np.abs(ours[finite] - theirs[finite]), initial=0.0) < TOLERANCE_DB


@pytest.mark.parametrize("channels", [1, 2])
def test_random_signals_match_museval_per_window(channels: int) -> None:
    rng = np.random.default_rng(channels)
    reference = rng.standard_normal((4, channels, 3 * RATE + 1234))
    estimate = _leaky_estimate(reference, rng)
    ours = bsseval.sdr_frames(reference, estimate, RATE, RATE)
    assert ours.shape == (4, 3)  # museval drops the last partial window
    _assert_same(ours, _museval_frames(reference, estimate, RATE))


def test_generated_songs_match_museval_per_window() -> None:
    rng = np.random.default_rng(0)
    stems = synthesize_song(seed=3, seconds=4.0, sample_rate=RATE, channels=2)
    reference = np.stack(list(stems.values())).astype(np.float64)
    estimate = _leaky_estimate(reference, rng, leak=0.3)
    _assert_same(bsseval.sdr_frames(reference, estimate, RATE, RATE), _museval_frames(reference, estimate, RATE))


def test_a_near_perfect_estimate_matches_museval_per_window() -> None:
    # errors of 1e-6 per sample (SDR about 120 dB): a window's error energy is about 1e-8, so an epsilon in the
    # SDR's denominator shows here where the leaky estimates' large errors would drown it
    rng = np.random.default_rng(9)
    reference = rng.standard_normal((2, 2, 3 * RATE + 17))
    estimate = reference + 1e-6 * rng.standard_normal(reference.shape)
    ours = bsseval.sdr_frames(reference, estimate, RATE, RATE)
    assert np.all((ours > 110) & (ours < 130))
    _assert_same(ours, _museval_frames(reference, estimate, RATE))


@pytest.mark.parametrize("samples", [RATE // 2, RATE, 2 * RATE - 1])
def test_tracks_up_to_one_window_long_and_short_last_windows(samples: int) -> None:
    rng = np.random.default_rng(samples)
    reference = rng.standard_normal((3, 2, samples))
    estimate = _leaky_estimate(reference, rng)
    ours = bsseval.sdr_frames(reference, estimate, RATE, RATE)
    assert ours.shape[1] == bsseval.window_count(samples, RATE, RATE) == 1
    _assert_same(ours, _museval_frames(reference, estimate, RATE))


def test_silent_windows_are_nan_for_every_source() -> None:
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((4, 2, 4 * RATE))
    estimate = _leaky_estimate(reference, rng)
    reference[1, :, RATE : 2 * RATE] = 0  # a silent reference window
    estimate[3, :, 3 * RATE :] = 0  # a silent estimate window
    reference[2, 0, 2 * RATE : 3 * RATE] = -reference[2, 1, 2 * RATE : 3 * RATE]  # channels cancel: "silent"
    ours = bsseval.sdr_frames(reference, estimate, RATE, RATE)
    assert np.isnan(ours[:, 1:]).all() and np.isfinite(ours[:, 0]).all()
    _assert_same(ours, _museval_frames(reference, estimate, RATE))


def test_a_source_silent_throughout_makes_every_window_nan() -> None:
    rng = np.random.default_rng(6)
    reference = rng.standard_normal((4, 1, 2 * RATE))
    reference[2] = 0
    estimate = _leaky_estimate(reference, rng)
    assert np.isnan(bsseval.sdr_frames(reference, estimate, RATE, RATE)).all()
    assert np.isnan(bsseval.sdr(reference, estimate, RATE)).all()


def test_a_perfect_window_is_infinite_like_museval() -> None:
    rng = np.random.default_rng(7)
    reference = rng.standard_normal((2, 1, 2 * RATE))
    estimate = _leaky_estimate(reference, rng)
    estimate[:, :, :RATE] = reference[:, :, :RATE]
    ours = bsseval.sdr_frames(reference, estimate, RATE, RATE)
    assert np.isposinf(ours[:, 0]).all()


def test_the_median_over_windows_matches_the_project_museval_wrapper() -> None:
    from selfrefine.evaluation.metrics import bsseval_sdr

    rng = np.random.default_rng(8)
    reference = rng.standard_normal((4, 2, 5 * RATE))
    estimate = _leaky_estimate(reference, rng)
    reference[0, :, :RATE] = 0
    np.testing.assert_allclose(
        bsseval.sdr(reference, estimate, RATE), bsseval_sdr(reference, estimate, RATE), rtol=0, atol=TOLERANCE_DB
    )


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="sources, channels, samples"):
        bsseval.sdr_frames(np.zeros((2, 100)), np.zeros((2, 100)), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        bsseval.sdr_frames(np.ones((1, 1, 100)), np.ones((1, 1, 100)), 0, 10)
