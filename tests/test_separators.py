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


def test_truncation_leaves_out_each_sources_highest_terms_ranked_relative_to_the_targets_level() -> None:
    from selfrefine.training.separation import target_levels, truncated_mean

    losses = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, 1.0]], requires_grad=True)
    value = truncated_mean(losses, 0.75)  # per source, floor(0.25 * 4) = 1 term leaves: 100 (bass), 30 (drums)
    assert float(value.detach()) == pytest.approx((1 + 2 + 3 + 10 + 20 + 1) / 6)
    value.backward()
    assert torch.allclose(losses.grad, torch.tensor([[1, 1], [1, 1], [1, 0], [0, 1]]) / 6.0)
    loud = torch.tensor([[1.0], [2.0], [8.0], [3.0]])  # the third example is loud, not wrong: level 10
    levels = torch.tensor([[1.0], [1.0], [10.0], [1.0]])
    assert float(truncated_mean(loud, 0.75, levels)) == pytest.approx((1 + 2 + 8) / 3)
    assert float(truncated_mean(loud, 0.75)) == pytest.approx((1 + 2 + 3) / 3), "by the raw loss it would leave"
    assert float(truncated_mean(torch.tensor([[1.0], [9.0]]), 0.8)) == 5.0, "2 x 0.2 < 1: nothing can leave"
    big = torch.rand(32, 4)
    kept = truncated_mean(big.clone().requires_grad_(), 0.8)
    kept.backward()
    assert float(kept.detach()) < float(big.mean())
    dropped = int((big > big.sort(dim=0).values[25]).sum())
    assert dropped == 4 * 6, "floor(0.2 * 32) = 6 terms per source, 18.75 % of the batch, never more than 20 %"
    sources = torch.ones(2, 4, 1, 10)
    sources[1] *= 3.0
    assert torch.allclose(target_levels(sources, 4, "l1"), torch.tensor([[1.0] * 4, [3.0] * 4]), atol=1e-6)
    assert torch.allclose(target_levels(sources, 1, "multidomain"), torch.tensor([[1.0], [9.0]]), atol=1e-6)


def _truncate_on_a_rank(rank: int, store: str, losses: torch.Tensor, out: str) -> None:
    import os

    import torch.distributed as dist

    from selfrefine.training.separation import truncated_mean

    os.environ.update({"WORLD_SIZE": "2", "RANK": str(rank)})
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    mine = losses[rank * 4 : (rank + 1) * 4].clone().requires_grad_()
    value = truncated_mean(mine, 0.75)
    value.backward()
    grads = [torch.empty_like(mine.grad) for _ in range(2)]
    dist.all_gather(grads, mine.grad)
    if rank == 0:
        torch.save({"value": value.detach(), "grad": torch.cat(grads) / 2}, out)  # DDP averages over the ranks
    dist.destroy_process_group()


def test_under_ddp_one_threshold_per_source_spans_every_ranks_share(tmp_path) -> None:
    import torch.multiprocessing as mp

    from selfrefine.training.separation import truncated_mean

    losses = torch.tensor([[float(i), float(7 - i)] for i in range(8)])
    losses[0, 0] = 50.0  # worst bass terms: rows 0, 7 (one per rank); worst drums: rows 0, 1 (both on rank 0),
    # so a ranking per rank would make rank 1 leave out a drums term that the global batch keeps
    out = tmp_path / "rank0.pt"
    mp.spawn(_truncate_on_a_rank, args=(str(tmp_path / "store"), losses, str(out)), nprocs=2)
    whole = losses.clone().requires_grad_()
    truncated_mean(whole, 0.75).backward()
    ranks = torch.load(out)
    assert torch.allclose(ranks["grad"], whole.grad), "the two ranks' gradients are the one-process gradient"
    assert int((whole.grad == 0).sum()) == 4, "floor(0.25 * 8) = 2 terms per source over the global batch"


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
