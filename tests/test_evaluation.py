from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.evaluation.metrics import global_sdr
from selfrefine.evaluation.separation import evaluate_separator, separate

from conftest import RATE, write_song


class Share(nn.Module):
    """A fixed 'separator' that gives each source a fixed share of the mixture (known SDR)."""

    sources = list(CLASSES)
    samplerate = RATE
    audio_channels = 1
    segment = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.tensor([0.4, 0.3, 0.2, 0.1]), requires_grad=False)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.weights[None, :, None, None] * mix[:, None]


def test_chunked_separation_equals_the_unchunked_one_for_a_pointwise_model() -> None:
    mix = np.random.default_rng(0).standard_normal((1, 3 * RATE + 123)).astype(np.float32)
    out = separate(Share(), mix, overlap=0.25)
    np.testing.assert_allclose(out, Share()(torch.from_numpy(mix)[None])[0].numpy(), rtol=1e-4, atol=1e-5)


def test_evaluation_scores_match_a_direct_computation(tmp_path: Path) -> None:
    songs = {}
    for i in range(2):
        write_song(tmp_path / f"song{i}", seed=i, seconds=2.0)
        songs[f"song{i}"] = {c: str(tmp_path / f"song{i}" / f"{c}.wav") for c in CLASSES}
    result = evaluate_separator(
        Share(), songs, RATE, 1, 0.25, bsseval=True, museval_check=True, estimates_dir=tmp_path / "est"
    )
    expected = []
    for i in range(2):
        stems = write_song(tmp_path / "again", seed=i, seconds=2.0)
        reference = np.stack([stems[c] for c in CLASSES])
        estimate = np.array([0.4, 0.3, 0.2, 0.1])[:, None, None] * reference.sum(axis=0)
        expected.append(global_sdr(reference, estimate))
    for k, c in enumerate(CLASSES):
        assert np.isclose(result["global_sdr"]["mean"][c], np.mean([e[k] for e in expected]), atol=1e-4)
        assert np.isfinite(result["sdr"]["median"][c])
    assert result["songs"] == 2 and (tmp_path / "est" / "song1" / "vocals.wav").is_file()
    assert 0 <= result["museval_max_abs_diff_db"] < 0.01
