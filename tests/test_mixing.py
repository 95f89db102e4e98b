from pathlib import Path

import numpy as np
import pytest
import torch

from selfrefine import CLASSES
from selfrefine.audio import write_audio
from selfrefine.data import LabelledStem, StemStore, labels_to_vector
from selfrefine.mixing import LabelMixer, SourceMixer

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
        mix, target, chosen = mixer.example()
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


def test_source_mixer_gives_one_stem_per_class_that_sum_to_the_mixture(pool) -> None:
    store, stems = pool
    pools = {"bass": [0], "drums": [1], "other": [2], "vocals": [4]}
    mixer = SourceMixer(store, pools, segment=RATE // 4, gain_db=3.0, shift=RATE // 10, seed=0)
    mix, sources = mixer.batch(5)
    assert mix.shape == (5, 1, RATE // 4) and sources.shape == (5, len(CLASSES), 1, RATE // 4)
    torch.testing.assert_close(mix, sources.sum(dim=1))
    with pytest.raises(ValueError, match="the pool of 'vocals' is empty"):
        SourceMixer(store, {**pools, "vocals": []}, RATE // 4, 0.0, 0, 0)
