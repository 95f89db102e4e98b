import pytest
import torch

from selfrefine import CLASSES
from selfrefine.data import LabelledStem
from selfrefine.models import SEPARATORS, build, load_checkpoint, save_checkpoint
from selfrefine.separators import LOSSES, build_pools, model_kwargs

TINY = {
    "demucs": {"channels": 4, "depth": 4, "nfft": 1024},
    "xumx": {"n_fft": 256, "n_hop": 64, "hidden_size": 16, "nb_layers": 1},
}


@pytest.mark.parametrize("name", SEPARATORS)
@pytest.mark.parametrize("channels", [1, 2])
def test_forward_shape_mono_and_stereo(name: str, channels: int) -> None:
    model = build(SEPARATORS[name], model_kwargs(TINY[name], 8000, channels, 1.0))
    out = model(torch.randn(2, channels, 8000))
    assert out.shape == (2, len(CLASSES), channels, 8000)


@pytest.mark.parametrize("name", SEPARATORS)
def test_one_step_decreases_the_loss(name: str) -> None:
    torch.manual_seed(0)
    model = build(SEPARATORS[name], model_kwargs(TINY[name], 8000, 1, 1.0))
    sources = torch.randn(2, 4, 1, 8000) * torch.tensor([0.5, 0.2, 0.1, 0.05])[None, :, None, None]
    mix = sources.sum(dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        before = float(LOSSES[name](model, mix, sources))
    for _ in range(3):
        loss = LOSSES[name](model, mix, sources)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert float(LOSSES[name](model, mix, sources)) < before


@pytest.mark.parametrize("name", SEPARATORS)
def test_checkpoint_rebuilds_the_model_without_config(name: str, tmp_path) -> None:
    kwargs = model_kwargs(TINY[name], 8000, 1, 1.0)
    model = build(SEPARATORS[name], kwargs).eval()
    save_checkpoint(tmp_path / "m.pt", model, SEPARATORS[name], kwargs, labels="noisy")
    loaded, package = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(1, 1, 8000)
    torch.testing.assert_close(loaded(x), model(x))
    assert package["class"] == SEPARATORS[name] and package["provenance"]["labels"] == "noisy"


def test_pools_from_a_planted_label_table() -> None:
    stems = [
        LabelledStem("a", "bass", "p", frozenset({"bass"})),
        LabelledStem("a", "vocals", "p", frozenset({"drums", "vocals"})),
        LabelledStem("b", "vocals", "p", frozenset({"drums"})),
        LabelledStem("b", "other", "p", frozenset()),
        LabelledStem("c", "other", "p", frozenset({"other"})),
    ]
    assert build_pools(stems, "single") == {"bass": [0], "drums": [2], "other": [4], "vocals": []}
    assert build_pools(stems, "named") == {"bass": [0], "drums": [], "other": [4], "vocals": [1]}
