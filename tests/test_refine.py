from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.audio import write_audio
from selfrefine.data.labels import LabelledStem
from selfrefine.data.stems import StemStore
from selfrefine.refine import (
    audio_probabilities,
    class_thresholds,
    confirm_changes,
    later_round,
    refinement_scores,
    relabel,
    stem_probabilities,
    table_extras,
)

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


class LevelReader(nn.Module):
    """A stand-in classifier whose logits are a known function of a window's mean sample value ``m``."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        m = wave.mean(dim=(1, 2))
        return torch.stack([10 * m, -10 * m, 20 * m - 5, torch.full_like(m, 2.0)], dim=-1)


def _expected(levels: list[float]) -> np.ndarray:
    """``(windows, 4)`` sigmoid outputs of :class:`LevelReader` on windows of constant ``levels``, by hand."""
    m = np.array(levels, dtype=np.float64)[:, None]
    logits = np.hstack([10 * m, -10 * m, 20 * m - 5, np.full_like(m, 2.0)])
    return 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_stem_probabilities_aggregate_the_loud_crops_exactly(tmp_path: Path, aggregate: str) -> None:
    # half-second crops, hop a crop: stem 0 is a silent crop then crops of constant level 0.1, 0.3, 0.5; stem 1
    # is silent throughout; stem 2 is two crops, 0.2 and 0.4 (so the two loud stems have different crop counts)
    crop = RATE // 2
    stems = [[0.0, 0.1, 0.3, 0.5], [0.0, 0.0], [0.2, 0.4]]
    paths = []
    for i, levels in enumerate(stems):
        audio = np.repeat(np.array(levels, dtype=np.float32), crop)[None]
        write_audio(tmp_path / f"{i}.wav", audio, RATE)
        paths.append(str(tmp_path / f"{i}.wav"))
    store = StemStore(paths, RATE, 1, -60.0)
    probs = stem_probabilities(LevelReader(), store, crop, crop, aggregate)
    pick = (lambda w: w.mean(axis=0)) if aggregate == "mean" else (lambda w: w.max(axis=0))
    expected = np.stack([pick(_expected([0.1, 0.3, 0.5])), np.zeros(4), pick(_expected([0.2, 0.4]))])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    one = audio_probabilities(LevelReader(), store.read(0), crop, crop, aggregate, -60.0, RATE)
    np.testing.assert_allclose(one, expected[0], atol=1e-6)


def test_adaptive_thresholds_separate_the_validation_classes() -> None:
    targets = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=bool)
    probs = np.where(targets, 0.6, 0.3)
    adaptive = class_thresholds("adaptive", targets, probs)
    assert np.all((adaptive > 0.3) & (adaptive <= 0.6))
    np.testing.assert_array_equal(class_thresholds(0.9, targets, probs), np.full(4, 0.9))


def test_a_later_round_relabels_averages_or_changes_only_what_it_is_sure_of() -> None:
    """refine.later_rounds: the paper relabels from the round's probabilities alone; ``average`` thresholds the
    mean with the earlier round's; ``confirm`` keeps the earlier label set but where the classifier is sure."""
    stems = [LabelledStem("s", "other", "p", frozenset({"other"})), LabelledStem("s", "bass", "q", frozenset())]
    now = np.array([[0.1, 0.1, 0.8, 0.6], [0.05, 0.1, 0.2, 0.95]], dtype=np.float32)  # vocals heard in 'other'
    earlier = np.array([[0.1, 0.1, 0.9, 0.2], [0.9, 0.1, 0.2, 0.1]], dtype=np.float32)
    half = np.full(len(CLASSES), 0.5)
    paper, probs = later_round(stems, now, earlier, half, "relabel", 0.9)
    assert [s.labels for s in paper] == [{"other", "vocals"}, {"vocals"}] and probs is now
    mean, probs = later_round(stems, now, earlier, half, "average", 0.9)
    assert [s.labels for s in mean] == [{"other"}, {"vocals"}] and np.allclose(probs, (now + earlier) / 2)
    sure, _ = later_round(stems, now, earlier, half, "confirm", 0.9)
    assert [s.labels for s in sure] == [{"other"}, {"vocals"}], "0.6 adds nothing; 0.95 adds vocals"
    sure, _ = later_round(stems, now, earlier, half, "confirm", 0.85)
    assert sure[0].labels == {"other"} and confirm_changes(stems[:1], now[:1] * 0 + 0.1, 0.85)[0].labels == set()
