"""Tests for the synthetic multitrack generator (selfrefine.data.synth) and the dataset writer (selfrefine.data.worlds)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from selfrefine import CLASSES
from selfrefine.data.audio import rms_db
from selfrefine.data.synth import synthesize_song
from selfrefine.data.worlds import generate_dataset

SR = 16000
SEEDS = range(6)


@pytest.fixture(scope="module")
def songs() -> list[dict[str, np.ndarray]]:
    """Six 4-second mono songs at 16 kHz, as float64 ``(samples,)`` arrays per class."""
    return [
        {name: audio[0].astype(np.float64) for name, audio in synthesize_song(seed, 4.0, SR, 1).items()}
        for seed in SEEDS
    ]


# --- measurements --------------------------------------------------------------------------------


def spectral_centroid(x: np.ndarray) -> float:
    """Power-weighted mean frequency in Hz of the long-term spectrum of ``x`` (n,)."""
    freqs, power = signal.welch(x, SR, nperseg=1024)
    return float((freqs * power).sum() / power.sum())


def spectral_flatness(x: np.ndarray) -> float:
    """Mean over non-quiet 32 ms frames of geometric / arithmetic mean of the power spectrum (0 tonal .. 1 noise)."""
    _, _, spec = signal.stft(x, SR, nperseg=512)
    power = np.abs(spec) ** 2 + 1e-20
    energy = power.sum(axis=0)
    power = power[:, energy > 1e-3 * energy.max()]
    return float(np.mean(np.exp(np.log(power).mean(axis=0)) / power.mean(axis=0)))


def crest_factor_db(x: np.ndarray) -> float:
    """Peak-to-RMS ratio of ``x`` (n,) in dB."""
    return float(20.0 * np.log10(np.abs(x).max() / np.sqrt(np.mean(np.square(x)))))


def yin_cents(x: np.ndarray, win: int = 512, hop: int = 160, fmin: float = 40.0, fmax: float = 1000.0) -> np.ndarray:
    """Frame-wise pitch of a monophonic ``x`` (n,) in cents re 440 Hz (10 ms hop), NaN where unvoiced.

    YIN: cumulative-mean-normalised difference function, first dip below 0.15 (else the global minimum)
    followed down to its local minimum, parabolic interpolation; frames with a poor dip or under 5% of the
    loudest frame's RMS are unvoiced.
    """
    tau_max, tau_min = int(SR / fmin), int(SR / fmax)
    n_frames = (x.size - win - tau_max) // hop
    frames = x[np.arange(n_frames)[:, None] * hop + np.arange(win + tau_max)]
    nfft = 1 << int(np.ceil(np.log2(2 * (win + tau_max))))
    corr = np.fft.irfft(np.fft.rfft(frames, nfft) * np.conj(np.fft.rfft(frames[:, :win], nfft)), nfft)
    cum = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(frames**2, axis=1)], axis=1)
    energy = cum[:, win : win + tau_max + 1] - cum[:, : tau_max + 1]
    diff = energy[:, :1] + energy - 2.0 * corr[:, : tau_max + 1]
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-20)
    cmnd[:, :tau_min] = 2.0
    below = cmnd < 0.15
    first = np.where(below.any(axis=1), below.argmax(axis=1), cmnd.argmin(axis=1))
    rms = np.sqrt(cum[:, win] / win)
    cents = np.full(n_frames, np.nan)
    for i, tau in enumerate(first):
        while tau < tau_max and cmnd[i, tau + 1] < cmnd[i, tau]:
            tau += 1
        if cmnd[i, tau] < 0.3 and tau < tau_max and rms[i] > 0.05 * rms.max():
            y0, y1, y2 = cmnd[i, tau - 1 : tau + 2]
            curvature = y0 - 2.0 * y1 + y2
            period = tau + (0.5 * (y0 - y2) / curvature if curvature > 0 else 0.0)
            cents[i] = 1200.0 * np.log2(SR / period / 440.0)
    return cents


def pitch_jitter_cents(x: np.ndarray) -> float:
    """Median absolute frame-to-frame (10 ms) pitch change in cents over voiced frames of ``x`` (n,).

    Steady notes give ~0 (note changes are rare and the median ignores them); vibrato gives several cents.
    """
    steps = np.abs(np.diff(yin_cents(x)))
    return float(np.median(steps[np.isfinite(steps)]))


def pitch_modulation_spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of the pitch wobble of ``x`` (n,): frequencies in Hz (1 Hz apart) and summed power.

    Over each voiced run of at least 1.2 s, the pitch in cents minus its 0.19 s running median (which keeps
    note steps and removes 5-6 Hz vibrato), clipped to +-100 cents against octave errors, is analysed with
    Welch's method.
    """
    cents = yin_cents(x)
    voiced = np.concatenate([[0], np.isfinite(cents).astype(int), [0]])
    edges = np.flatnonzero(np.diff(voiced))
    kernel, total = 19, np.zeros(51)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= 100 + kernel:
            run = cents[start:stop]
            wobble = np.clip(run - signal.medfilt(run, kernel), -100.0, 100.0)[kernel // 2 : -(kernel // 2)]
            total += signal.welch(wobble, 100.0, nperseg=100)[1] * wobble.size
    return np.fft.rfftfreq(100, 0.01), total


def active_fraction(x: np.ndarray) -> float:
    """Fraction of 50 ms frames of ``x`` (n,) whose RMS is within 40 dB of the loudest frame."""
    frames = x[: x.size // 800 * 800].reshape(-1, 800)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return float(np.mean(rms > 0.01 * rms.max()))


# --- synthesize_song -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
def test_song_shapes_dtype_and_levels(channels: int) -> None:
    stems = synthesize_song(11, 1.23456, SR, channels)
    assert list(stems) == list(CLASSES)
    for name, audio in stems.items():
        assert audio.shape == (channels, round(1.23456 * SR)), name
        assert audio.dtype == np.float32, name
        assert np.isfinite(audio).all(), name
        assert 0.0 < np.abs(audio).max() < 1.0, name
        assert -24.5 <= rms_db(audio) <= -13.5, name
    if channels == 2:
        assert all(not np.array_equal(audio[0], audio[1]) for audio in stems.values())


def test_song_is_deterministic_per_seed() -> None:
    first, again, other = (synthesize_song(seed, 1.0, SR, 2) for seed in (5, 5, 6))
    for name in CLASSES:
        assert np.array_equal(first[name], again[name]), name
        assert not np.allclose(first[name], other[name]), name


def test_levels_span_the_range_and_peaks_stay_below_one() -> None:
    levels = {name: [] for name in CLASSES}
    for seed in range(12):
        for name, audio in synthesize_song(seed, 1.0, SR, 1).items():
            assert np.abs(audio).max() < 1.0
            levels[name].append(rms_db(audio))
    for name, values in levels.items():
        assert min(values) >= -24.5 and max(values) <= -13.5, (name, values)
        assert max(values) - min(values) > 4.0, (name, values)  # random per song, not a fixed level


@pytest.mark.parametrize("seconds", [1 / SR, 0.01, 0.05])
def test_very_short_songs_are_not_silent(seconds: float) -> None:
    for seed in range(5):
        for name, audio in synthesize_song(seed, seconds, SR, 2).items():
            assert audio.shape == (2, round(seconds * SR))
            assert np.isfinite(audio).all() and 0.0 < np.abs(audio).max() < 1.0, (seed, name)


def test_paper_scale_rate_works() -> None:
    stems = synthesize_song(3, 0.5, 44100, 2)
    for audio in stems.values():
        assert audio.shape == (2, 22050) and np.isfinite(audio).all() and 0.0 < np.abs(audio).max() < 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 3},
        {"channels": 0},
        {"seconds": 0.0},
        {"sample_rate": 4000},
        {"seed": -1},
    ],
)
def test_invalid_arguments_raise(kwargs: dict) -> None:
    args = {"seed": 0, "seconds": 1.0, "sample_rate": SR, "channels": 1} | kwargs
    with pytest.raises(ValueError):
        synthesize_song(**args)


# --- the classes differ measurably ---------------------------------------------------------------


def test_bass_sits_below_other_and_vocals_which_share_the_mid_range(songs) -> None:
    centroids = {name: np.array([spectral_centroid(song[name]) for song in songs]) for name in CLASSES}
    # measured: bass ~90-150 Hz, other ~380-600 Hz, vocals ~350-560 Hz
    assert centroids["bass"].mean() < 0.5 * centroids["other"].mean()
    assert centroids["bass"].mean() < 0.5 * centroids["vocals"].mean()
    assert centroids["bass"].max() < min(centroids["other"].min(), centroids["vocals"].min())
    # vocals and other overlap (not trivially separable by register)
    assert max(centroids["other"].min(), centroids["vocals"].min()) < min(
        centroids["other"].max(), centroids["vocals"].max()
    )


def test_drums_are_noisier_and_peakier_than_bass_and_vocals(songs) -> None:
    flatness = {name: np.mean([spectral_flatness(song[name]) for song in songs]) for name in CLASSES}
    crest = {name: np.mean([crest_factor_db(song[name]) for song in songs]) for name in CLASSES}
    # measured: flatness drums ~0.035, vocals ~0.002, bass ~0.0001; crest drums ~14 dB, vocals ~11, bass ~6
    assert flatness["drums"] > 5.0 * flatness["vocals"]
    assert flatness["drums"] > 5.0 * flatness["bass"]
    assert crest["drums"] > crest["vocals"] + 1.5
    assert crest["drums"] > crest["bass"] + 4.0


def test_vocals_have_vibrato_and_bass_does_not(songs) -> None:
    vocal = np.array([pitch_jitter_cents(song["vocals"]) for song in songs])
    bass = np.array([pitch_jitter_cents(song["bass"]) for song in songs])
    # measured: vocals ~1.4-8 cents per 10 ms, bass ~0.05-0.4
    assert vocal.mean() > 2.0
    assert vocal.mean() > 5.0 * bass.mean()
    assert np.median(vocal) > 3.0 * np.median(bass)
    spectra = [pitch_modulation_spectrum(song["vocals"]) for song in songs]
    freqs, power = spectra[0][0], np.sum([p for _, p in spectra], axis=0)
    peak = freqs[np.argmax(power[1:]) + 1]  # skip 0 Hz
    assert 4.0 <= peak <= 7.0, (peak, power)  # the wobble is a 5-6 Hz vibrato


def test_vocals_sing_most_of_the_song_with_rests(songs) -> None:
    active = np.array([active_fraction(song["vocals"]) for song in songs])
    assert active.min() > 0.6, active
    assert active.mean() < 0.97, active  # phrases are separated by rests
    for song in songs:
        for name in ("bass", "drums", "other"):
            assert active_fraction(song[name]) > 0.5, name


# --- generate_dataset ----------------------------------------------------------------------------


def _read_split(root, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Read every song folder of ``root/split`` as ``{song: {class: (samples, channels) array}}``."""
    return {
        song.name: {name: sf.read(str(song / f"{name}.wav"), dtype="float32")[0] for name in CLASSES}
        for song in sorted((root / split).iterdir())
    }


def test_generate_dataset_layout_and_content(tmp_path, caplog) -> None:
    root = tmp_path / "synth"
    root.mkdir()
    (root / "stale.txt").write_text("replaced")
    with caplog.at_level(logging.INFO, logger="selfrefine.data.worlds"):
        generate_dataset(root, train_songs=2, test_songs=1, seconds=0.5, sample_rate=SR, channels=2, seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary folders left behind
    assert sorted(p.name for p in root.iterdir()) == ["test", "train"]
    assert sorted(p.name for p in (root / "train").iterdir()) == ["train_0000", "train_0001"]
    assert sorted(p.name for p in (root / "test").iterdir()) == ["test_0000"]
    for song in [*(root / "train").iterdir(), *(root / "test").iterdir()]:
        assert sorted(p.name for p in song.iterdir()) == sorted(f"{name}.wav" for name in CLASSES)
        for name in CLASSES:
            info = sf.info(str(song / f"{name}.wav"))
            assert (info.samplerate, info.frames, info.channels) == (SR, 8000, 2)
            assert info.subtype == "FLOAT"
    assert "3/3" in caplog.text

    train, test = _read_split(root, "train"), _read_split(root, "test")
    songs = [*train.values(), *test.values()]
    for i, a in enumerate(songs):
        for b in songs[i + 1 :]:
            assert not np.allclose(a["vocals"], b["vocals"])
            assert not np.allclose(a["bass"], b["bass"])

    again = tmp_path / "again"
    generate_dataset(again, train_songs=2, test_songs=1, seconds=0.5, sample_rate=SR, channels=2, seed=3)
    repeat = _read_split(again, "train")
    assert all(np.array_equal(train[s][n], repeat[s][n]) for s in train for n in CLASSES)


def test_generate_dataset_mono_and_other_seed(tmp_path) -> None:
    generate_dataset(tmp_path / "a", train_songs=1, test_songs=1, seconds=0.25, sample_rate=SR, channels=1, seed=0)
    generate_dataset(tmp_path / "b", train_songs=1, test_songs=1, seconds=0.25, sample_rate=SR, channels=1, seed=1)
    a, b = _read_split(tmp_path / "a", "train"), _read_split(tmp_path / "b", "train")
    assert sf.info(str(tmp_path / "a" / "test" / "test_0000" / "drums.wav")).channels == 1
    assert a["train_0000"]["drums"].shape == (4000,)
    assert not np.allclose(a["train_0000"]["drums"], b["train_0000"]["drums"])


def test_generate_dataset_rejects_negative_counts(tmp_path) -> None:
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "x", train_songs=-1, test_songs=1, seconds=0.5, sample_rate=SR, channels=1, seed=0)
    assert not (tmp_path / "x").exists()
