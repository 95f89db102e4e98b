import numpy as np
import pytest
import torch

from selfrefine import CLASSES
from selfrefine.data.labels import LabelledStem
from selfrefine.models.checkpoints import load_checkpoint, save_checkpoint
from selfrefine.models.registry import build, loss, separators
from selfrefine.training.separation import build_pools, model_kwargs

TINY = {
    "demucs": {"channels": 4, "depth": 4, "nfft": 1024},
    "xumx": {"n_fft": 256, "n_hop": 64, "hidden_size": 16, "nb_layers": 1},
}


@pytest.mark.parametrize("name", separators())
@pytest.mark.parametrize("channels", [1, 2])
def test_forward_shape_mono_and_stereo(name: str, channels: int) -> None:
    model = build(name, model_kwargs(TINY[name], 8000, channels, 1.0))
    out = model(torch.randn(2, channels, 8000))
    assert out.shape == (2, len(CLASSES), channels, 8000)


LOSS_CHOICES = [
    (name, choice)
    for name in separators()
    for choice in ("l1", "mse", "multidomain")
    if (name, choice) != ("demucs", "multidomain")
]


@pytest.mark.parametrize(("name", "choice"), LOSS_CHOICES)
def test_one_step_decreases_each_loss(name: str, choice: str) -> None:
    torch.manual_seed(0)
    model = build(name, model_kwargs(TINY[name], 8000, 1, 1.0))
    sources = torch.randn(2, 4, 1, 8000) * torch.tensor([0.5, 0.2, 0.1, 0.05])[None, :, None, None]
    mix = sources.sum(dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = loss(name, choice)
    with torch.no_grad():
        before = float(loss_fn(model, mix, sources))
    for _ in range(3):
        value = loss_fn(model, mix, sources)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        assert float(loss_fn(model, mix, sources)) < before


@pytest.mark.parametrize(("name", "choice"), LOSS_CHOICES)
def test_each_loss_per_example_and_source_averages_to_the_scalar_loss(name: str, choice: str) -> None:
    torch.manual_seed(0)
    model = build(name, model_kwargs(TINY[name], 8000, 1, 1.0)).eval()
    sources = torch.randn(3, 4, 1, 8000) * torch.tensor([0.5, 0.2, 0.1, 0.05])[None, :, None, None]
    mix = sources.sum(dim=1)
    loss_fn = loss(name, choice)
    with torch.no_grad():
        per = loss_fn(model, mix, sources, reduce=False)
        assert per.shape == ((3, 1) if choice == "multidomain" else (3, 4))
        assert float(per.mean()) == pytest.approx(float(loss_fn(model, mix, sources)), rel=1e-5)
        assert not torch.allclose(per[0], per[1])  # examples are scored apart


def test_truncated_mean_leaves_out_the_largest_losses_from_the_gradient() -> None:
    from selfrefine.training.separation import truncated_mean

    losses = torch.tensor([[1.0, 2.0], [3.0, 100.0]], requires_grad=True)
    value = truncated_mean(losses, 0.7)  # the 0.7 quantile of (1, 2, 3, 100) is 3.0 + 0.1 * 97 = 12.7
    assert float(value.detach()) == pytest.approx(2.0)
    value.backward()
    assert torch.allclose(losses.grad, torch.tensor([[1 / 3, 1 / 3], [1 / 3, 0.0]]))
    assert float(truncated_mean(torch.tensor([[5.0, 5.0]]), 0.1)) == 5.0  # ties at the quantile all stay


def test_an_unknown_loss_is_one_line_naming_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"^separators.demucs.train.loss: 'multidomain' is not a loss of demucs; use one of l1, mse$"
    ):
        loss("demucs", "multidomain")


@pytest.mark.parametrize("name", separators())
def test_checkpoint_rebuilds_the_model_without_config(name: str, tmp_path) -> None:
    kwargs = model_kwargs(TINY[name], 8000, 1, 1.0)
    model = build(name, kwargs).eval()
    save_checkpoint(tmp_path / "m.pt", model, name, kwargs, labels="noisy")
    loaded, package = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(1, 1, 8000)
    torch.testing.assert_close(loaded(x), model(x))
    assert package["model"] == name and package["class"] == type(model).__name__
    assert package["provenance"]["labels"] == "noisy"


def test_pools_from_a_planted_label_table() -> None:
    stems = [
        LabelledStem("a", "bass", "p", frozenset({"bass"})),
        LabelledStem("a", "vocals", "p", frozenset({"drums", "vocals"})),
        LabelledStem("b", "vocals", "p", frozenset({"drums"})),
        LabelledStem("b", "other", "p", frozenset()),
        LabelledStem("c", "other", "p", frozenset({"other"})),
    ]
    every = list(range(len(stems)))
    assert build_pools(stems, "single", every) == {"bass": [0], "drums": [2], "other": [4], "vocals": []}
    assert build_pools(stems, "named", every) == {"bass": [0], "drums": [], "other": [4], "vocals": [1]}
    assert build_pools(stems, "single", [2, 3, 4]) == {"bass": [], "drums": [2], "other": [4], "vocals": []}


def _tones(folder, songs: int) -> list[LabelledStem]:
    from selfrefine.data.audio import write_audio

    stems = []
    for s in range(songs):
        for k, c in enumerate(CLASSES):
            path = folder / f"{s}_{c}.wav"
            hz = 200.0 + 40.0 * (s * len(CLASSES) + k)
            write_audio(path, (0.3 * np.sin(2 * np.pi * hz * np.arange(8000) / 8000))[None].astype(np.float32), 8000)
            stems.append(LabelledStem(f"song{s}", c, str(path), frozenset({c})))
    return stems


def test_validation_songs_never_reach_the_training_pools(tmp_path) -> None:
    from selfrefine.config import SeparatorTrainParams
    from selfrefine.data.labels import split_songs
    from selfrefine.data.stems import StemStore
    from selfrefine.training.separation import SeparatorTraining

    stems = _tones(tmp_path, 10)
    store = StemStore([s.path for s in stems], 8000, 1, -60.0)
    tp = SeparatorTrainParams(segment_seconds=0.25, shift_seconds=0.0, val_fraction=0.3, val_examples=24)
    task = SeparatorTraining("demucs", model_kwargs(TINY["demucs"], 8000, 1, 0.25), stems, store, "single", tp, 0, "d")
    _, val_idx = split_songs(stems, tp.val_fraction, 0)
    val_songs = {stems[i].song for i in val_idx}
    assert len(val_songs) == 3
    trained = {stems[i].song for pool in task.pools.values() for i in pool}
    assert trained and not trained & val_songs
    assert len(trained) == 7
    hz = np.array([200.0 + 40.0 * i for i in range(len(stems))])
    spectrum = np.abs(np.fft.rfft(task.val_sources.numpy()[:, :, 0], axis=-1))
    peaks = np.fft.rfftfreq(task.val_sources.shape[-1], 1 / 8000)[spectrum.argmax(axis=-1)]
    drawn = {stems[int(np.abs(hz - f).argmin())].song for f in peaks.ravel()}
    assert drawn <= val_songs, "validation examples mixed from training songs"
