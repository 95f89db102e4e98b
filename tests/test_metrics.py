"""Tests for selfrefine.metrics: separation SDRs, track summaries and multi-label scores."""

from __future__ import annotations

import math
import warnings

import museval
import numpy as np
import pytest

from selfrefine.evaluation.metrics import (
    SDR_EPS,
    bsseval_sdr,
    f1_optimal_thresholds,
    global_sdr,
    multilabel_scores,
    summarize_tracks,
)

SR = 8000


def make_pair(seed: int, channels: int, seconds: int = 3, sources: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(sources, channels, samples)`` reference (enveloped tones + hiss) and an estimate
    with 20 % leakage from the neighbouring source plus white noise."""
    rng = np.random.default_rng(seed)
    n = seconds * SR
    t = np.arange(n) / SR
    ref = np.empty((sources, channels, n))
    for s in range(sources):
        tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in rng.uniform(80, 1000, size=3))
        env = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 2) * t))
        for c in range(channels):
            ref[s, c] = env * tone * rng.uniform(0.5, 1) + 0.05 * rng.standard_normal(n)
    est = ref + 0.2 * np.roll(ref, 1, axis=0) + 0.1 * rng.standard_normal(ref.shape)
    return ref, est


# ---------------------------------------------------------------- global SDR


@pytest.mark.parametrize("ratio", [4.0, 0.5, 100.0])
def test_global_sdr_exact_energy_ratio(ratio: float) -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((1, 2, 1000))
    noise = rng.standard_normal((1, 2, 1000))
    energy = np.sum(ref**2)
    noise *= np.sqrt(energy / ratio / np.sum(noise**2))  # sum(noise^2) == energy / ratio
    got = global_sdr(ref, ref + noise)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(10 * math.log10((energy + SDR_EPS) / (energy / ratio + SDR_EPS)), abs=1e-9)
    assert got[0] == pytest.approx(10 * math.log10(ratio), abs=1e-6)  # eps is negligible here


def test_global_sdr_perfect_estimate_is_large_and_finite() -> None:
    ref = np.random.default_rng(2).standard_normal((2, 1, 500))
    got = global_sdr(ref, ref.copy())
    expected = 10 * np.log10((np.sum(ref**2, axis=(1, 2)) + SDR_EPS) / SDR_EPS)
    assert np.all(np.isfinite(got))
    assert np.all(got > 90)
    np.testing.assert_allclose(got, expected)


def test_global_sdr_silent_reference_uses_eps() -> None:
    ref = np.zeros((2, 2, 100))
    est = np.zeros((2, 2, 100))
    est[1, 0, 0] = 1.0  # error energy 1 on source 1 only
    got = global_sdr(ref, est)
    assert got[0] == pytest.approx(0.0)  # (eps + 0) / (eps + 0)
    assert got[1] == pytest.approx(10 * math.log10(SDR_EPS / (1 + SDR_EPS)))  # about -70 dB
    assert np.all(np.isfinite(got))


def test_global_sdr_sources_are_independent() -> None:
    ref, est = make_pair(3, channels=2, seconds=1, sources=3)
    before = global_sdr(ref, est)
    est[1] = 0.0
    after = global_sdr(ref, est)
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] == pytest.approx(0.0, abs=1e-6)  # silent estimate: error == reference


def test_global_sdr_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        global_sdr(np.zeros((2, 100)), np.zeros((2, 100)))
    with pytest.raises(ValueError):
        global_sdr(np.zeros((2, 1, 100)), np.zeros((2, 1, 99)))


# ---------------------------------------------------------------- BSSEval SDR


@pytest.mark.parametrize("channels", [2, 1])
def test_bsseval_sdr_matches_museval(channels: int) -> None:
    ref, est = make_pair(4, channels=channels)
    ref[1, :, :SR] = 0.0  # first second of source 1 silent: museval gives a NaN frame there
    direct, _, _, _ = museval.evaluate(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=SR, hop=SR)
    assert np.isnan(direct[:, 0]).all() and np.isfinite(direct[:, 1:]).all()
    got = bsseval_sdr(ref, est, SR)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, np.nanmedian(direct, axis=1))


def test_bsseval_sdr_higher_for_better_estimate() -> None:
    ref, est = make_pair(5, channels=2)
    better = ref + 0.3 * (est - ref)
    assert np.all(bsseval_sdr(ref, better, SR) > bsseval_sdr(ref, est, SR) + 5)


def test_bsseval_sdr_regression_value() -> None:
    # Stored once from this implementation (museval 0.4.1, v4, 1 s windows and hop, median over frames);
    # a change in window, hop, mode or aggregation moves these by far more than 1e-3 dB.
    ref, est = make_pair(0, channels=2)
    np.testing.assert_allclose(bsseval_sdr(ref, est, SR), [13.022, 11.363], atol=1e-3)


def test_bsseval_sdr_all_frames_nan_gives_nan_quietly() -> None:
    ref, est = make_pair(6, channels=1, seconds=2)
    ref[0, :, :SR] = 0.0  # source 0 silent in frame 0, source 1 in frame 1: no source silent throughout,
    ref[1, :, SR:] = 0.0  # but museval makes every frame NaN for every source
    direct, _, _, _ = museval.evaluate(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=SR, hop=SR)
    assert direct.shape == (2, 2) and np.isnan(direct).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = bsseval_sdr(ref, est, SR)
    assert np.isnan(got).all()


def test_bsseval_sdr_source_silent_throughout_is_nan() -> None:
    # museval.evaluate raises on a wholly silent reference or estimate; under its frame rule every
    # frame would be NaN for every source, so bsseval_sdr returns NaN for all sources instead.
    ref, est = make_pair(7, channels=2, seconds=2)
    silent_ref = ref.copy()
    silent_ref[0] = 0.0
    with pytest.raises(ValueError):
        museval.evaluate(silent_ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=SR, hop=SR)
    assert np.isnan(bsseval_sdr(silent_ref, est, SR)).all()
    silent_est = est.copy()
    silent_est[1] = 0.0
    assert np.isnan(bsseval_sdr(ref, silent_est, SR)).all()


# ---------------------------------------------------------------- track summary


def test_summarize_tracks_hand_worked() -> None:
    per_track = np.array([[1.0, 4.0], [3.0, np.nan], [8.0, 10.0]])
    got = summarize_tracks(per_track, ["bass", "vocals"])
    # bass: median of 1,3,8 = 3, mean 12/3 = 4; vocals (NaN skipped): median = mean = (4+10)/2 = 7
    assert got == {
        "median": {"bass": 3.0, "vocals": 7.0, "mean_over_sources": 5.0},
        "mean": {"bass": 4.0, "vocals": 7.0, "mean_over_sources": 5.5},
    }
    assert all(type(v) is float for stats in got.values() for v in stats.values())


def test_summarize_tracks_all_nan_source() -> None:
    per_track = np.array([[1.0, np.nan], [2.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = summarize_tracks(per_track, ["a", "b"])
    assert got["median"]["a"] == 1.5 and got["mean"]["a"] == 1.5
    assert math.isnan(got["median"]["b"]) and math.isnan(got["mean"]["mean_over_sources"])
    with pytest.raises(ValueError):
        summarize_tracks(per_track, ["a"])


# ---------------------------------------------------------------- multi-label classification


def test_multilabel_scores_hand_worked() -> None:
    classes = ["bass", "drums", "vocals", "other"]
    y_true = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    y_pred = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]], dtype=bool)
    got = multilabel_scores(y_true, y_pred, classes)
    # Rows fully right: only row 1 -> 1/4. Cells right: 3 + 4 + 3 + 3 = 13 of 16.
    assert got["exact_match"] == pytest.approx(0.25)
    assert got["label_accuracy"] == pytest.approx(13 / 16)
    pc = got["per_class"]
    # bass: TP 2, FP 0, FN 0 -> P = R = F1 = 1; all 4 cells right.
    assert pc["bass"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "support": 2}
    # drums: TP 1 (row 1), FP 0, FN 1 (row 2) -> P 1, R 1/2, F1 2/3; 3 cells right.
    assert pc["drums"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "accuracy": 0.75, "support": 2})
    # vocals: TP 1 (row 1), FP 1 (row 3), FN 1 (row 0) -> P = R = F1 = 1/2; rows 1, 2 right.
    assert pc["vocals"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.5, "support": 2})
    # other: never true, never predicted -> P, R, F1 undefined -> 0; every cell right.
    assert pc["other"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0, "support": 0}
    # macro F1 = (1 + 2/3 + 1/2 + 0) / 4 = 13/24; micro: TP 4, FP 1, FN 2 -> 8 / (8 + 3) = 8/11.
    assert got["macro_f1"] == pytest.approx(13 / 24)
    assert got["micro_f1"] == pytest.approx(8 / 11)
    assert type(pc["bass"]["support"]) is int


def test_multilabel_scores_false_alarms_only() -> None:
    y_true = np.zeros((3, 1), dtype=bool)
    y_pred = np.array([[True], [False], [True]])
    pc = multilabel_scores(y_true, y_pred, ["bass"])["per_class"]["bass"]
    # TP 0, FP 2 -> P = 0/2 = 0; R and F1 undefined -> 0.
    assert pc == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1 / 3, "support": 0})
    with pytest.raises(ValueError):
        multilabel_scores(y_true, y_pred, ["bass", "drums"])


def test_f1_optimal_thresholds_planted() -> None:
    y_true = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=bool)
    probs = np.array(
        [
            [0.7, 0.46, 0.6],
            [0.8, 0.9, 0.5],
            [0.9, 0.05, 0.4],
            [0.1, 0.01, 0.0],
            [0.2, 0.02, 0.0],
            [0.3, 0.03, 0.0],
        ]
    )
    got = f1_optimal_thresholds(y_true, probs)
    # col 0: any threshold in (0.3, 0.7] separates perfectly; ties -> the highest, 0.7 (>= is inclusive).
    # col 1: positives 0.46, 0.9, negatives <= 0.05 -> F1 = 1 on (0.05, 0.46]; highest grid point 0.45.
    # col 2: positives 0.6, 0.4, negative 0.5. t <= 0.4: TP 2, FP 1 -> F1 4/5; (0.4, 0.5]: TP 1, FP 1,
    #        FN 1 -> 1/2; (0.5, 0.6]: TP 1, FN 1 -> 2/3; above: 0 -> best 0.4.
    np.testing.assert_allclose(got, [0.7, 0.45, 0.4])


def test_f1_optimal_thresholds_custom_unsorted_grid() -> None:
    y_true = np.array([[True], [False]])
    probs = np.array([[0.8], [0.2]])
    # 0.3 and 0.5 both give F1 = 1, 0.9 gives 0 -> the higher tie, 0.5.
    assert f1_optimal_thresholds(y_true, probs, grid=np.array([0.9, 0.3, 0.5])).tolist() == [0.5]
    with pytest.raises(ValueError):
        f1_optimal_thresholds(y_true, probs, grid=np.array([]))


def test_calibration_error_hand_worked() -> None:
    from selfrefine.evaluation.metrics import calibration_error

    # Bin [0.2, 0.3): p = 0.25 twice, one true -> |0.25 - 0.5| = 0.25, weight 2/4.
    # Bin [0.9, 1.0]: p = 0.95 twice, both true -> |0.95 - 1| = 0.05, weight 2/4.
    y = np.array([[True, False], [True, True]])
    p = np.array([[0.25, 0.25], [0.95, 0.95]])
    assert calibration_error(y, p) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
    assert calibration_error(np.array([[True, False]]), np.array([[1.0, 0.0]])) == 0.0
