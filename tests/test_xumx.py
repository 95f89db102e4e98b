"""Tests of the X-UMX separator and its loss (tiny configurations, CPU)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
import torch
from demucs.apply import apply_model

from selfrefine.models.separators.xumx import CrossUMX, combination_loss, max_bin_for, weighted_sdr_loss, xumx_loss

TINY = {"samplerate": 8000, "n_fft": 256, "n_hop": 64, "hidden_size": 16, "nb_layers": 1, "max_bin_hz": 3000.0}


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Tiny ops run fastest on one thread; several threads spin against each other on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0, **overrides: object) -> CrossUMX:
    """A tiny X-UMX with deterministic weights."""
    torch.manual_seed(seed)
    return CrossUMX(**{**TINY, **overrides})


def noise(*shape: int, seed: int = 1) -> torch.Tensor:
    """Deterministic Gaussian noise of ``shape``."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("length", [1001, 2048])
@pytest.mark.parametrize("training", [True, False])
def test_forward_shape_and_exact_length(channels: int, length: int, training: bool) -> None:
    model = tiny_model(audio_channels=channels).train(training)
    out = model(noise(3, channels, length))
    assert out.shape == (3, 4, channels, length)
    assert torch.isfinite(out).all()


def test_wiener_eval_output_shape_and_training_mode_skips_it() -> None:
    model = tiny_model(wiener_iters=1, sources=["a", "b", "c"])
    mix = noise(2, 2, 999)
    assert model.eval()(mix).shape == (2, 3, 2, 999)
    _, plain = model.separate(mix)
    assert not torch.allclose(model(mix), plain)
    assert torch.allclose(model.train()(mix), model.separate(mix)[1])


def test_mixture_phase_output_sums_to_mask_weighted_mixture() -> None:
    """Unit masks (every source passes the mixture) give back the mixture per source."""
    model = tiny_model(max_bin_hz=None).eval()
    for branch in model.branches:
        torch.nn.init.zeros_(branch.fc3.weight)
    mix = noise(1, 2, 1500)
    out = model(mix)
    assert torch.allclose(out, mix.unsqueeze(1).expand_as(out), atol=1e-5)


def test_crossing_couples_branches() -> None:
    model = tiny_model().eval()
    mix = noise(1, 2, 1200)
    before = model(mix)
    with torch.no_grad():
        model.branches[0].fc3.weight.add_(0.5)
    after_decoder = model(mix)
    assert not torch.allclose(after_decoder[:, 0], before[:, 0])
    assert torch.allclose(after_decoder[:, 1:], before[:, 1:]), "decoders are per source"
    with torch.no_grad():
        model.branches[0].fc1.weight.add_(0.5)
    after_encoder = model(mix)
    for source in range(1, 4):
        assert not torch.allclose(after_encoder[:, source], after_decoder[:, source], atol=1e-6)


def test_crossing_lstm_outputs_reach_every_source() -> None:
    model = tiny_model().eval()
    mix = noise(1, 2, 1200)
    before = model(mix)
    with torch.no_grad():
        for weight in model.branches[2].lstm.parameters():
            weight.add_(0.3)
    assert not torch.allclose(model(mix)[:, 0], before[:, 0], atol=1e-6)


def squared_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((estimate - target) ** 2).mean()


def test_combination_loss_hand_worked() -> None:
    estimates = torch.tensor([[1.0, 2.0, 3.0]])
    targets = torch.zeros(1, 3)
    # singles 1, 4, 9; pairs (1+2)^2, (1+3)^2, (2+3)^2 = 9, 16, 25; mean = 64 / 6
    assert combination_loss(estimates, targets, squared_error).item() == pytest.approx(64 / 6)
    assert combination_loss(estimates, targets, squared_error, combine=False).item() == pytest.approx(14 / 3)
    # two sources: the only proper subsets are the single sources
    two = combination_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), squared_error)
    assert two.item() == pytest.approx((1 + 4) / 2)
    one = combination_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), squared_error)
    assert one.item() == pytest.approx(4.0)


def test_weighted_sdr_loss_known_values() -> None:
    target = noise(2, 3, 500)
    mix = target + noise(2, 3, 500, seed=7)
    assert weighted_sdr_loss(target, target, mix).item() == pytest.approx(-1.0, abs=1e-5)
    # y = [1, 0], x - y = [0, 1]: alpha = 1/2, cos(0, y) = 0, cos(x, x - y) = 1/sqrt(2)
    y, x = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    assert weighted_sdr_loss(torch.zeros(2), y, x).item() == pytest.approx(-0.5 / math.sqrt(2), abs=1e-5)
    silent = weighted_sdr_loss(torch.zeros(4), torch.zeros(4), torch.zeros(4))
    assert torch.isfinite(silent)


def test_max_bin_for() -> None:
    assert max_bin_for(44100, 4096, 16000.0) == 1487
    assert max_bin_for(44100, 4096, None) == 2049
    assert max_bin_for(16000, 1024, 16000.0) == 513


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="even"):
        CrossUMX(**{**TINY, "hidden_size": 15})
    with pytest.raises(ValueError, match="two sources"):
        CrossUMX(**{**TINY, "sources": ["vocals"], "wiener_iters": 1})
    with pytest.raises(ValueError, match="too short"):
        tiny_model()(torch.zeros(1, 2, 100))


def test_training_steps_decrease_loss() -> None:
    model = tiny_model(audio_channels=1).train()
    sources = 0.3 * noise(4, 4, 1, 2000)
    mix = sources.sum(1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    initial = xumx_loss(model, mix, sources).item()
    for _ in range(5):
        optimiser.zero_grad()
        loss = xumx_loss(model, mix, sources)
        loss.backward()
        optimiser.step()
    assert all(p.grad is not None for branch in model.branches for p in branch.parameters())
    assert xumx_loss(model, mix, sources).item() < initial


def test_loss_without_combination_is_finite_and_differs() -> None:
    model = tiny_model(sources=["a", "b", "c"]).eval()
    sources = 0.3 * noise(2, 3, 2, 1500)
    mix = sources.sum(1)
    with torch.no_grad():
        combined = xumx_loss(model, mix, sources)
        single = xumx_loss(model, mix, sources, combine_sources=False)
    assert torch.isfinite(combined) and torch.isfinite(single)
    assert combined.item() != pytest.approx(single.item())


def test_apply_model_single_chunk_matches_forward() -> None:
    model = tiny_model().eval()
    mix = noise(1, 2, 1800)
    with torch.no_grad():
        direct = model(mix)
    chunked = apply_model(model, mix, shifts=0, split=True, overlap=0.25, segment=0.5)
    assert torch.allclose(chunked, direct, atol=1e-5)


def test_apply_model_many_chunks_roughly_matches_forward() -> None:
    model = tiny_model().eval()
    # 0.25 s segments = 2000 samples, stride 1500: offsets 0..4500, last chunk only 10 samples long
    mix = noise(2, 2, 4510)
    with torch.no_grad():
        direct = model(mix)
    chunked = apply_model(model, mix, shifts=0, split=True, overlap=0.25, segment=0.25)
    assert chunked.shape == (2, 4, 2, 4510)
    assert ((chunked - direct).norm() / direct.norm()).item() < 0.1
    shifted = apply_model(model, mix, split=True, overlap=0.25, segment=0.25)
    assert shifted.shape == (2, 4, 2, 4510)


def test_rebuilds_from_json_kwargs() -> None:
    kwargs = json.loads(json.dumps({**TINY, "sources": ["bass", "drums", "other", "vocals"], "audio_channels": 1}))
    model = tiny_model(**kwargs)
    model.train()
    xumx_loss(model, noise(2, 1, 1000), 0.25 * noise(2, 4, 1, 1000)).backward()  # moves BN running stats
    rebuilt = CrossUMX(**kwargs)
    rebuilt.load_state_dict(model.state_dict())
    mix = noise(1, 1, 1300)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(mix), model.eval()(mix))
