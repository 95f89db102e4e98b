"""The streaming stem store: crops read on demand equal the in-memory audio they replace, the per-stem
cache is keyed by content, and a dataset far larger than a few stems is never held in memory."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine.data import audio as audio_module
from selfrefine.data.audio import AudioError, read_audio
from selfrefine.data.labels import LabelledStem
from selfrefine.data.mixing import LabelMixer, SourceMixer
from selfrefine.data.stems import StemStore, loud_windows

RATE = 8000


def _noise(seconds: float, channels: int, seed: int, quiet_head: bool = False) -> np.ndarray:
    x = (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * RATE), channels))).astype(np.float32)
    if quiet_head:
        x[: len(x) // 2] = 0.0
    return x


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    """Stereo at the working rate, mono (duplicated to stereo), another rate (resampled), short, half silent."""
    specs = [
        ("stereo.wav", _noise(3.0, 2, 0), RATE, "FLOAT"),
        ("mono.flac", _noise(2.0, 1, 1), RATE, "PCM_16"),
        ("resampled.wav", _noise(2.5, 2, 2), 11025, "FLOAT"),
        ("short.wav", _noise(0.2, 2, 3), RATE, "FLOAT"),
        ("half_silent.wav", _noise(4.0, 2, 4, quiet_head=True), RATE, "PCM_24"),
    ]
    paths = []
    for name, data, rate, subtype in specs:
        sf.write(tmp_path / name, data, rate, subtype=subtype)
        paths.append(str(tmp_path / name))
    return paths


def test_streamed_crops_and_windows_equal_slices_of_the_whole_file_read(files: list[str], tmp_path: Path) -> None:
    store = StemStore(files, RATE, 2, -40.0, cache=tmp_path / "cache")
    for i, path in enumerate(files):
        whole = read_audio(path, RATE, 2)
        assert store.frames(i) == whole.shape[1]
        np.testing.assert_array_equal(store.read(i), whole)
        for seed in range(20):
            length = 4000
            start = store.crop_start(i, length, np.random.default_rng(seed))
            crop = store.crop(i, length, np.random.default_rng(seed))
            if whole.shape[1] <= length:  # padded at the drawn position
                expected = np.zeros((2, length), np.float32)
                expected[:, start : start + whole.shape[1]] = whole
            else:
                expected = whole[:, start : start + length]
            np.testing.assert_array_equal(crop, expected)
        np.testing.assert_array_equal(store.windows(i, 4000, 2000), loud_windows(whole, 4000, 2000, -40.0))
    assert not store.is_silent(4)
    starts = {store.crop_start(4, RATE // 2, np.random.default_rng(s)) for s in range(50)}
    assert min(starts) >= 2 * RATE - RATE // 2, "crops avoid the silent first half"


def test_the_cache_is_reused_and_keyed_by_content_not_path(files: list[str], tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = StemStore(files, RATE, 2, -40.0, cache=cache)
    assert len(list(cache.glob("*.f32"))) == 1, "only the file at another rate is converted"

    def no_decoding(*_):
        raise AssertionError("a cached stem was decoded again")

    monkeypatch.setattr("selfrefine.data.stems.decode", no_decoding)
    again = StemStore(files, RATE, 2, -40.0, cache=cache)
    assert again.digest() == first.digest()
    np.testing.assert_array_equal(again.read(2), first.read(2))
    monkeypatch.setattr("selfrefine.data.stems.decode", audio_module.decode)

    sf.write(files[0], _noise(3.0, 2, 99), RATE, subtype="FLOAT")  # same path, new content
    changed = StemStore(files, RATE, 2, -40.0, cache=cache)
    assert changed.digest() != first.digest()
    np.testing.assert_array_equal(changed.read(0), read_audio(files[0], RATE, 2))
    mono = StemStore(files, RATE, 1, -40.0, cache=cache)
    assert mono.digest() != first.digest(), "the working format is part of the key"


def test_a_damaged_cache_entry_is_rebuilt_never_read_as_audio(files: list[str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    clean = StemStore(files, RATE, 2, -40.0, cache=cache)
    expected = [(clean.frames(i), clean.stems[i].levels.copy(), clean.read(i)) for i in range(len(files))]
    names = sorted(p.name for p in cache.iterdir())
    assert {Path(n).suffix for n in names} == {".json", ".npy", ".f32"}
    rng = np.random.default_rng(0)
    for trial in range(40):
        victim = cache / names[int(rng.integers(len(names)))]
        data = bytearray(victim.read_bytes())
        damage = ("truncate", "garble", "replace", "delete")[trial % 4]
        if damage == "truncate":
            victim.write_bytes(bytes(data[: int(rng.integers(0, len(data)))]))
        elif damage == "garble":
            for _ in range(int(rng.integers(1, 8))):
                data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
            victim.write_bytes(bytes(data))
        elif damage == "replace":
            victim.write_bytes(b"not a cache entry")
        else:
            victim.unlink()
        store = StemStore(files, RATE, 2, -40.0, cache=cache)
        for i, (frames, levels, audio) in enumerate(expected):
            assert store.frames(i) == frames, (damage, victim.name)
            np.testing.assert_array_equal(store.stems[i].levels, levels)
            np.testing.assert_array_equal(store.read(i), audio, err_msg=f"{damage} {victim.name}")
        assert sorted(p.name for p in cache.iterdir()) == names, "the damaged entry was rebuilt"


def test_a_missing_stem_is_one_line_naming_it(files: list[str], tmp_path: Path) -> None:
    with pytest.raises(AudioError) as err:
        StemStore([*files, str(tmp_path / "gone.wav")], RATE, 2, -40.0, cache=tmp_path / "cache")
    assert "gone.wav: no such file" in str(err.value) and "\n" not in str(err.value)


def test_training_on_a_dataset_far_larger_than_the_memory_cap_never_holds_it(tmp_path: Path) -> None:
    """40 stems of 10 s stereo (25.6 MB as float32): indexing them (2 threads) and mixing hundreds of batches
    stays under 8 stems' worth (a decode in flight per thread, its copies and a batch)."""
    classes = ["bass", "drums", "other", "vocals"]
    stems = []
    for k in range(40):
        path = tmp_path / f"{k}.wav"
        sf.write(path, _noise(10.0, 2, k), RATE, subtype="FLOAT")
        stems.append(LabelledStem(f"song{k // 4}", classes[k % 4], str(path), frozenset({classes[k % 4]})))
    one_stem = 10 * RATE * 2 * 4
    cap = 8 * one_stem
    tracemalloc.start()
    try:
        store = StemStore([s.path for s in stems], RATE, 2, -60.0, cache=tmp_path / "cache", threads=2)
        labels = LabelMixer(store, stems, RATE, 4, 6.0, seed=0)
        pools = {c: [k for k in range(40) if k % 4 == j] for j, c in enumerate(classes)}
        sources = SourceMixer(store, pools, RATE, 3.0, RATE // 4, seed=1)
        for _ in range(100):
            labels.batch(8)
            sources.batch(4)
        for i in range(len(store)):
            store.windows(i, RATE, RATE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < cap, (
        f"peak {peak / 1e6:.1f} MB while the cap is {cap / 1e6:.1f} MB ({40 * one_stem / 1e6:.1f} MB all)"
    )
