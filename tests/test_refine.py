from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.audio import write_audio
from selfrefine.data.labels import LabelledStem
from selfrefine.data.stems import StemStore
from selfrefine.refine import class_thresholds, refinement_scores, relabel, stem_probabilities, table_extras

from conftest import RATE, TONES, tone


class BandOracle(nn.Module):
    """A stand-in classifier that hears the test tones: energy share near each class's frequency."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft(wave.mean(dim=1)).abs() ** 2
        freqs = torch.fft.rfftfreq(wave.shape[-1], 1 / RATE)
        total = spec.sum(dim=-1, keepdim=True) + 1e-9
        shares = []
        for c in CLASSES:
            band = freqs > 2500 if c == "drums" else (freqs - TONES[c]).abs() < 20
            shares.append((spec * band).sum(dim=-1, keepdim=True) / total)
        return 40 * (torch.cat(shares, dim=-1) - 0.05)


@pytest.fixture
def planted(tmp_path: Path):
    """Stems named 'bass' that hold: bass (clean), vocals (swap), bass+drums (merge), silence."""
    contents = [{"bass"}, {"vocals"}, {"bass", "drums"}, set()]
    stems, paths = [], []
    for i, content in enumerate(contents):
        audio = sum((tone(c, 2.0, seed=i) for c in content), np.zeros((1, 2 * RATE), dtype=np.float32))
        write_audio(tmp_path / f"{i}.wav", audio, RATE)
        stems.append(LabelledStem(f"s{i}", "bass", str(tmp_path / f"{i}.wav"), frozenset({"bass"})))
        paths.append(str(tmp_path / f"{i}.wav"))
    return stems, StemStore(paths, RATE, 1, -60.0), [frozenset(c) for c in contents]


def test_a_swapped_and_a_merged_stem_are_relabelled(planted) -> None:
    stems, store, truth = planted
    probs = stem_probabilities(BandOracle(), store, crop=RATE // 2, hop=RATE // 2, aggregate="mean")
    assert probs.shape == (4, 4) and not probs[3].any(), "a silent stem gets zero probabilities"
    refined = relabel(stems, probs, np.full(4, 0.9))
    assert [r.labels for r in refined] == truth
    extras = table_extras(stems, refined, probs)
    assert [e["changed"] for e in extras] == [0, 1, 1, 1]
    scores = refinement_scores(stems, refined, truth, ["", "swap", "merge", "silent"], probs)
    assert scores["label_accuracy_noisy"] == 0.25 and scores["label_accuracy_refined"] == 1.0
    assert scores["detection"] == {"precision": 1.0, "recall": 1.0, "corrupted": 3}
    assert scores["by_noise_kind"]["swap"]["recovered"] == 1.0
    assert scores["clean_wrongly_changed"] == 0
    assert len(scores["sweep"]["threshold"]) == len(scores["sweep"]["precision"]) == len(scores["sweep"]["recall"])


def test_max_aggregation_is_at_least_the_mean(planted) -> None:
    stems, store, _ = planted
    mean = stem_probabilities(BandOracle(), store, RATE // 2, RATE // 4, "mean")
    top = stem_probabilities(BandOracle(), store, RATE // 2, RATE // 4, "max")
    assert np.all(top >= mean - 1e-6)


def test_adaptive_thresholds_separate_the_validation_classes() -> None:
    targets = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=bool)
    probs = np.where(targets, 0.6, 0.3)
    adaptive = class_thresholds("adaptive", targets, probs)
    assert np.all((adaptive > 0.3) & (adaptive <= 0.6))
    np.testing.assert_array_equal(class_thresholds(0.9, targets, probs), np.full(4, 0.9))
