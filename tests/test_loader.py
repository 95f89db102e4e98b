"""Prefetching data-loader workers: any worker count gives the same batches and the same checkpointed state."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from selfrefine import CLASSES
from selfrefine.data.labels import LabelledStem
from selfrefine.data.loader import Direct, Prefetched, batches
from selfrefine.data.mixing import LabelMixer, SourceMixer
from selfrefine.data.stems import StemStore

RATE = 8000


@pytest.fixture
def mixers(tmp_path: Path):
    """Factories of a LabelMixer and a SourceMixer over 16 stereo stems (some at another rate)."""
    stems = []
    for k in range(16):
        rate = RATE if k % 3 else 11025
        data = 0.1 * np.random.default_rng(k).standard_normal((int(1.5 * rate), 2))
        sf.write(tmp_path / f"{k}.wav", data.astype(np.float32), rate, subtype="FLOAT")
        cls = CLASSES[k % 4]
        stems.append(LabelledStem(f"s{k // 4}", cls, str(tmp_path / f"{k}.wav"), frozenset({cls})))
    store = StemStore([s.path for s in stems], RATE, 2, -60.0, cache=tmp_path / "cache")
    pools = {c: [k for k in range(16) if k % 4 == j] for j, c in enumerate(CLASSES)}
    return {
        "label": lambda: LabelMixer(store, stems, RATE // 2, 3, 6.0, seed=3),
        "source": lambda: SourceMixer(store, pools, RATE // 2, 3.0, RATE // 8, seed=4),
    }


@pytest.mark.parametrize("kind", ["label", "source"])
def test_two_workers_give_the_batches_and_states_of_none(mixers, kind: str) -> None:
    direct, prefetched = Direct(mixers[kind](), 4), Prefetched(mixers[kind](), 4, workers=2)
    try:
        for _ in range(40):
            for a, b in zip(direct.next(), prefetched.next(), strict=True):
                assert torch.equal(a, b)
            assert prefetched.state_dict() == direct.state_dict(), "state after the batch handed out"
    finally:
        prefetched.close()


def test_closing_rewinds_the_mixer_to_the_last_batch_handed_out(mixers) -> None:
    reference = mixers["source"]()
    expected = [reference.batch(4) for _ in range(6)]
    mixer = mixers["source"]()
    stream = batches(mixer, 4, workers=2)
    for k in range(3):
        assert torch.equal(stream.next()[1], expected[k][1])
    stream.close()  # the workers had rendered batches beyond the third
    assert torch.equal(mixer.batch(4)[1], expected[3][1])
