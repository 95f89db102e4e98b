"""The sampled world: songs played from MuseScore General (selfrefine.data.sampled), as the generate stage writes
them. The soundfont is a Debian package that ``./setup.sh test`` installs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine import CLASSES
from selfrefine.data.audio import rms_db
from selfrefine.data.sampled import DRUM_BANK, PROGRAMS, render_plan, sample_song
from selfrefine.data.synth import plan_song
from selfrefine.data.worlds import PLANS, generate_dataset
from selfrefine.errors import UserError

SR = 16000


def test_the_same_seed_renders_the_same_bytes_whatever_was_rendered_before() -> None:
    first, plan = sample_song(5, 2.0, SR, 2)
    sample_song(6, 3.0, SR, 1)  # another song in between: the synthesizer must start each stem from silence
    again, plan_again = sample_song(5, 2.0, SR, 2)
    other, _ = sample_song(7, 2.0, SR, 2)
    assert plan == plan_again
    for name in CLASSES:
        assert first[name].tobytes() == again[name].tobytes(), name
        assert not np.allclose(first[name], other[name]), name


def test_each_class_plays_only_its_own_programs() -> None:
    sets = {cls: {p for programs in parts.values() for p in programs} for cls, parts in PROGRAMS.items()}
    melodic = [c for c in CLASSES if c != "drums"]
    assert all(not sets[a] & sets[b] for a in melodic for b in melodic if a != b), "no program in two classes"
    assert not {52, 53, 54, 85, 91, 94} & sets["other"], "voice-like programs are vocals' alone"
    seen = {cls: set() for cls in CLASSES}
    rng = np.random.default_rng(0)
    for _ in range(200):
        plan = render_plan(rng, plan_song(rng, 8 * SR, SR))
        channels = [p.channel for parts in plan.parts.values() for p in parts]
        assert len(channels) == len(set(channels)), "each part on its own MIDI channel"
        for cls, parts in plan.parts.items():
            for part in parts:
                assert part.program in PROGRAMS[cls][part.name], (cls, part)
                assert (part.bank == DRUM_BANK) == (cls == "drums") and (part.channel == 9) == (cls == "drums")
                seen[cls].add(part.program)
        assert [s for s, _ in plan.sections][0] == 0 and all(0.55 <= v <= 1.0 for _, v in plan.sections)
    assert all(len(seen[c]) >= 4 for c in CLASSES), "programs vary from song to song"


@pytest.mark.parametrize("channels", [1, 2])
def test_stems_have_the_length_level_and_no_silence_as_specified(channels: int) -> None:
    levels = {name: [] for name in CLASSES}
    for seed in range(8):
        stems, _ = sample_song(seed, 1.5, SR, channels)
        assert list(stems) == list(CLASSES)
        for name, audio in stems.items():
            assert audio.shape == (channels, round(1.5 * SR)) and audio.dtype == np.float32, name
            assert np.isfinite(audio).all() and 0.0 < np.abs(audio).max() < 1.0, name
            assert rms_db(audio) <= -13.5, name
            levels[name].append(rms_db(audio))
            if channels == 2:
                assert not np.array_equal(audio[0], audio[1]), "panned"
    for name, values in levels.items():
        assert min(values) > -40, (name, values)  # never silent; the -24..-14 dB target, lowered only at the peak
        assert np.median(values) >= -24.5 and max(values) - min(values) > 3.0, (name, values)


def test_the_bass_sits_below_the_vocals() -> None:
    bass_centroid, vocal_centroid = [], []
    for seed in range(4):
        stems, _ = sample_song(seed, 3.0, SR, 1)
        for name, out in (("bass", bass_centroid), ("vocals", vocal_centroid)):
            spectrum = np.abs(np.fft.rfft(stems[name][0])) ** 2
            freqs = np.fft.rfftfreq(stems[name].shape[1], 1 / SR)
            out.append((freqs * spectrum).sum() / spectrum.sum())
    assert np.median(bass_centroid) < np.median(vocal_centroid)


def test_the_generate_stage_writes_songs_and_render_plans(tmp_path: Path) -> None:
    root = tmp_path / "sampled"
    generate_dataset(root, 2, 1, 1.0, SR, 1, seed=4, test_seconds=2.0, engine="sampled")
    plans = json.loads((root / PLANS).read_text())
    assert sorted(plans) == ["test/test_0000", "train/train_0000", "train/train_0001"]
    for key, plan in plans.items():
        folder = root / key
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c}.wav" for c in CLASSES)
        info = sf.info(str(folder / "vocals.wav"))
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, SR * (2 if key.startswith("test") else 1))
        assert set(plan["parts"]) == set(CLASSES)
    seed = int(np.random.SeedSequence(4).spawn(3)[0].generate_state(1, np.uint64)[0])
    stems, plan = sample_song(seed, 1.0, SR, 1)
    assert plans["train/train_0000"] == json.loads(json.dumps(asdict(plan)))
    assert np.array_equal(sf.read(str(root / "train/train_0000/bass.wav"), dtype="float32")[0], stems["bass"][0])


def test_a_missing_soundfont_stops_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nothing\.sf3: no soundfont; .*musescore-general-soundfont-small"):
        generate_dataset(tmp_path / "x", 1, 1, 1.0, SR, 1, 0, engine="sampled", soundfont=tmp_path / "nothing.sf3")
    assert not (tmp_path / "x").exists()
