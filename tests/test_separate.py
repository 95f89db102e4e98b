"""``selfrefine separate``: any format in, the file's own format out, bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from selfrefine import CLASSES
from selfrefine.cli import app
from selfrefine.data.audio import resample, to_channels
from selfrefine.evaluation.separation import separate
from selfrefine.models.checkpoints import load_checkpoint, save_checkpoint
from selfrefine.models.registry import build
from selfrefine.separate import snr_db

from conftest import RATE, tone


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A small untrained HDemucs at 8 kHz mono (the embedded default's models are 16 kHz mono)."""
    kwargs = {"sources": list(CLASSES), "audio_channels": 1, "samplerate": RATE, "segment": 1.0}
    kwargs |= {"channels": 4, "depth": 4, "nfft": 1024}
    torch.manual_seed(0)
    path = tmp_path / "demucs.pt"
    save_checkpoint(path, build("demucs", kwargs), "demucs", kwargs)
    return path


def _song(path: Path, rate: int = 44100, channels: int = 2, seconds: float = 2.5) -> np.ndarray:
    mix = sum(tone(c, seconds, rate, seed=3, channels=channels) for c in CLASSES)
    sf.write(path, mix.T, rate, subtype="PCM_24" if path.suffix == ".flac" else "FLOAT")
    return sf.read(path, dtype="float32", always_2d=True)[0].T


def _separate(*args: str):
    return CliRunner().invoke(app, ["separate", *args])


@pytest.mark.parametrize(("name", "rate", "channels"), [("song.wav", 44100, 2), ("take.flac", 22050, 1)])
def test_stems_come_back_in_the_files_own_format(model: Path, tmp_path: Path, name: str, rate: int, channels: int):
    audio = _song(tmp_path / name, rate, channels)
    result = _separate(str(tmp_path / name), "--model", str(model), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / Path(name).stem
    stems = {}
    for c in CLASSES:
        info = sf.info(folder / f"{c}.wav")
        assert (info.samplerate, info.channels, info.frames) == (rate, channels, audio.shape[1])
        stems[c] = sf.read(folder / f"{c}.wav", dtype="float32", always_2d=True)[0].T
    # the stems are the model's separation of the model-format mix (what evaluate computes), converted back
    net, _ = load_checkpoint(model)
    mix = resample(to_channels(audio, 1), rate, RATE)
    expected = separate(net, mix, 0.25)
    got = resample(stems["vocals"].mean(axis=0, keepdims=True), rate, RATE)
    assert snr_db(expected[CLASSES.index("vocals")], got[:, : expected.shape[-1]]) > 25
    summary = json.loads((tmp_path / "out" / "separate.json").read_text())
    assert summary[0]["file"] == str(tmp_path / name) and summary[0]["rate"] == rate


def test_consistent_stems_sum_to_the_input_in_the_models_band(model: Path, tmp_path: Path) -> None:
    _song(tmp_path / "song.wav")
    out = tmp_path / "out"
    assert _separate(str(tmp_path / "song.wav"), "--model", str(model), "--out", str(out)).exit_code == 0
    raw = json.loads((out / "separate.json").read_text())[0]
    result = _separate(str(tmp_path / "song.wav"), "--model", str(model), "--out", str(out), "--consistent")
    assert result.exit_code == 0, result.output
    consistent = json.loads((out / "separate.json").read_text())[0]
    assert raw["sum_snr_band_db"] < 20, "an untrained model's stems do not add up by themselves"
    assert consistent["sum_snr_band_db"] > 80, "with --consistent they do, up to float rounding"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not audio at all"), "unreadable audio"),
        (lambda p: sf.write(p, np.full((RATE, 2), np.nan), RATE, subtype="FLOAT"), "contains NaN or infinite"),
        (lambda p: sf.write(p, np.zeros((0, 2)), RATE), "empty audio"),
        (lambda p: None, "no such file"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written(model: Path, tmp_path: Path, make, message):
    _song(tmp_path / "good.wav")
    bad = tmp_path / "bad.wav"
    make(bad)
    result = _separate(str(tmp_path / "good.wav"), str(bad), "--model", str(model), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {bad}: {message}") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_classifier_or_a_missing_model_is_refused(model: Path, tmp_path: Path) -> None:
    _song(tmp_path / "song.wav")
    result = _separate(str(tmp_path / "song.wav"), "--model", str(tmp_path / "none.pt"))
    assert result.exit_code == 1 and result.output.startswith(f"error: {tmp_path / 'none.pt'}: missing")
    kwargs = {"variant": "convnext_atto", "sample_rate": RATE, "n_mels": 32}
    save_checkpoint(tmp_path / "classifier.pt", build("classifier", kwargs), "classifier", kwargs)
    result = _separate(str(tmp_path / "song.wav"), "--model", str(tmp_path / "classifier.pt"))
    assert result.exit_code == 1 and "a classifier, not a separator" in result.output
