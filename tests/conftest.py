"""Shared fixtures: tiny generated audio in the MUSDB18-HQ layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from selfrefine import CLASSES
from selfrefine.data.audio import write_audio

RATE = 8000
TONES = {"bass": 110.0, "drums": 0.0, "other": 880.0, "vocals": 1760.0}
"""A distinct, easily told-apart signal per class (drums: noise bursts)."""

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _stem_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's stem cache: one fresh cache for the session (and its subprocesses)."""
    os.environ["SELFREFINE_CACHE"] = str(tmp_path_factory.mktemp("stem-cache"))


def tone(cls: str, seconds: float = 1.0, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """``(channels, samples)`` test signal for class ``cls``."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if cls == "drums":
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(n) * (np.mod(t, 0.25) < 0.05)
    else:
        x = np.sin(2 * np.pi * TONES[cls] * (1 + 0.01 * seed) * t)
    return np.repeat((0.3 * x)[None].astype(np.float32), channels, axis=0)


def write_song(folder: Path, seed: int = 0, seconds: float = 1.0, rate: int = RATE, channels: int = 1) -> dict:
    """Write one song's four stems; returns ``{class: audio}``."""
    stems = {c: tone(c, seconds, rate, seed, channels) for c in CLASSES}
    for c, audio in stems.items():
        write_audio(folder / f"{c}.wav", audio, rate)
    return stems


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A root with 4 training and 2 test songs of 1 s at 8 kHz mono."""
    root = tmp_path / "clean"
    for i in range(4):
        write_song(root / "train" / f"train_{i}", seed=i)
    for i in range(2):
        write_song(root / "test" / f"test_{i}", seed=10 + i)
    return root
