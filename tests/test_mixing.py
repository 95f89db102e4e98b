from pathlib import Path

import numpy as np
import pytest
import torch

from selfrefine import CLASSES
from selfrefine.data.audio import write_audio
from selfrefine.data.labels import LabelledStem, labels_to_vector
from selfrefine.data.mixing import LabelMixer, SourceMixer
from selfrefine.data.stems import StemStore

from conftest import RATE, tone


@pytest.fixture
def pool(tmp_path: Path) -> tuple[StemStore, list[LabelledStem]]:
    labels = [{"bass"}, {"drums", "vocals"}, {"other"}, set(), {"vocals"}, {"bass", "other"}]
    stems, paths = [], []
    for i, lab in enumerate(labels):
        audio = sum((tone(c, seed=i) for c in lab), np.zeros((1, RATE), dtype=np.float32)) + 1e-3
        path = tmp_path / f"{i}.wav"
        write_audio(path, audio.astype(np.float32), RATE)
        stems.append(LabelledStem(f"song{i}", "bass", str(path), frozenset(lab)))
        paths.append(str(path))
    return StemStore(paths, RATE, 1, -60.0), stems


def test_mixture_target_is_exactly_the_union_of_its_stems_labels(pool) -> None:
    store, stems = pool
    mixer = LabelMixer(store, stems, crop=RATE // 2, max_stems=4, gain_db=0.0, seed=0)
    sizes = set()
    for _ in range(200):
        plan = mixer.plan_example()
        mix, target = mixer.render_example(plan)
        chosen = [i for i, *_ in plan]
        union = frozenset().union(*(stems[i].labels for i in chosen))
        np.testing.assert_array_equal(target, labels_to_vector(union))
        assert len(set(chosen)) == len(chosen)
        sizes.add(len(chosen))
        assert mix.shape == (1, RATE // 2)
    assert sizes == {1, 2, 3, 4}


def test_mixers_are_seeded_and_resumable(pool) -> None:
    store, stems = pool
    a, b = (LabelMixer(store, stems, RATE // 4, 3, 6.0, seed=5) for _ in range(2))
    a.batch(3)
    state = a.state_dict()
    expected = a.batch(4)
    b.load_state_dict(state)
    got = b.batch(4)
    assert all(torch.equal(x, y) for x, y in zip(expected, got))


def _dominant_hz(audio: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(audio.numpy().mean(axis=0)))
    return float(np.fft.rfftfreq(audio.shape[-1], 1 / RATE)[np.argmax(spectrum)])


@pytest.fixture
def tonal_pools(tmp_path: Path) -> tuple[StemStore, dict[str, list[int]], dict[int, float]]:
    """Two stems per class, each a pure tone of its own frequency; pools by class."""
    hz = {i: 200.0 + 120.0 * i for i in range(8)}
    paths = []
    for i, f in hz.items():
        write_audio(
            tmp_path / f"{i}.wav", (0.3 * np.sin(2 * np.pi * f * np.arange(RATE) / RATE))[None].astype(np.float32), RATE
        )
        paths.append(str(tmp_path / f"{i}.wav"))
    pools = {c: [2 * k, 2 * k + 1] for k, c in enumerate(CLASSES)}
    return StemStore(paths, RATE, 1, -60.0), pools, hz


def test_each_source_is_drawn_from_its_own_class_pool(tonal_pools) -> None:
    store, pools, hz = tonal_pools
    mix, sources = SourceMixer(store, pools, segment=RATE // 4, gain_db=3.0, shift=RATE // 10, seed=0).batch(16)
    assert mix.shape == (16, 1, RATE // 4) and sources.shape == (16, len(CLASSES), 1, RATE // 4)
    drawn = {c: set() for c in CLASSES}
    for example in sources:
        for c, audio in zip(CLASSES, example):
            drawn[c].add(min(hz.values(), key=lambda f: abs(f - _dominant_hz(audio))))
    for c in CLASSES:
        assert drawn[c] == {hz[i] for i in pools[c]}, f"{c}: sources came from outside its pool"
    torch.testing.assert_close(mix, sources.sum(dim=1))


def test_an_empty_pool_is_a_one_line_error(tonal_pools) -> None:
    store, pools, _ = tonal_pools
    with pytest.raises(ValueError, match="the pool of 'vocals' is empty"):
        SourceMixer(store, {**pools, "vocals": []}, RATE // 4, 0.0, 0, 0)


def test_label_mixer_mixes_only_the_stems_it_is_given(pool) -> None:
    store, stems = pool
    mixer = LabelMixer(store, stems, RATE // 4, 4, 0.0, seed=0, among=[0, 2, 4])
    chosen = set()
    for _ in range(100):
        chosen |= {i for i, *_ in mixer.plan_example()}
    assert chosen == {0, 2, 4}


def test_effects_off_draw_nothing_so_mixtures_are_those_of_a_mixer_without_effects(pool) -> None:
    store, stems = pool
    plain = LabelMixer(store, stems, crop=RATE // 2, max_stems=4, gain_db=3.0, seed=5)
    off = LabelMixer(store, stems, crop=RATE // 2, max_stems=4, gain_db=3.0, seed=5, effects=0.0)
    on = LabelMixer(store, stems, crop=RATE // 2, max_stems=4, gain_db=3.0, seed=5, effects=1.0)
    a, b, c = plain.batch(16), off.batch(16), on.batch(16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and torch.isfinite(c[0]).all()
    again = LabelMixer(store, stems, crop=RATE // 2, max_stems=4, gain_db=3.0, seed=5, effects=1.0).batch(16)
    assert torch.equal(c[0], again[0]), "effects are drawn in the plan: the same seed gives the same audio"


def test_each_effect_keeps_shape_and_level_and_changes_the_sound() -> None:
    from selfrefine.data import effects as fx

    audio = tone("bass", seed=1)[:, : RATE // 2].astype(np.float32)
    rng = np.random.default_rng(0)
    for name in fx.EFFECTS:
        while not (drawn := [e for e in fx.draw(rng, 1.0, RATE) if e[0] == name]):
            pass
        out = fx.apply(audio, RATE, tuple(drawn))
        assert out.shape == audio.shape and out.dtype == np.float32 and np.isfinite(out).all(), name
        assert not np.allclose(out, audio, atol=1e-4), f"{name} changed nothing"
        rms = np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(audio**2))
        assert 0.05 < rms < 20, f"{name}: level ratio {rms}"
    assert fx.draw(rng, 0.0, RATE) == () and fx.apply(audio, RATE, ()) is audio
