import torch

from selfrefine import CLASSES
from selfrefine.models.classifier import InstrumentClassifier, predict


def test_classifier_shapes_for_mono_and_stereo() -> None:
    model = InstrumentClassifier(sample_rate=8000, n_mels=32, n_fft=256, hop_length=128)
    for channels in (1, 2):
        logits = model(torch.randn(3, channels, 8000))
        assert logits.shape == (3, 4)
    probs = predict(model, torch.randn(5, 1, 8000), batch_size=2)
    assert probs.shape == (5, 4) and ((probs >= 0) & (probs <= 1)).all()


def test_classifier_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = InstrumentClassifier(sample_rate=8000, n_mels=32, n_fft=256, hop_length=128)
    t = torch.arange(4000) / 8000
    waves = torch.stack([torch.sin(2 * torch.pi * f * t)[None] for f in (100.0, 400.0, 1600.0, 3000.0)])
    targets = torch.eye(4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(25):
        loss = loss_fn(model.train()(waves), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_mix_training_never_mixes_its_validation_songs(tmp_path) -> None:
    from selfrefine.config import MixTrainParams
    from selfrefine.data.audio import write_audio
    from selfrefine.data.labels import LabelledStem, split_songs
    from selfrefine.data.stems import StemStore
    from selfrefine.training.mixtrain import MixTraining

    from conftest import RATE, tone

    stems = []
    for s in range(10):
        for c in CLASSES:
            write_audio(tmp_path / f"{s}_{c}.wav", tone(c, seed=s), RATE)
            stems.append(LabelledStem(f"song{s}", c, str(tmp_path / f"{s}_{c}.wav"), frozenset({c})))
    store = StemStore([s.path for s in stems], RATE, 1, -60.0)
    tp = MixTrainParams(crop_seconds=0.25, val_fraction=0.3, val_mixtures=8)
    task = MixTraining(stems, store, {"n_mels": 16, "sample_rate": RATE}, tp, 0, "digest")
    train_idx, val_idx = split_songs(stems, tp.val_fraction, 0)
    assert sorted(task.source.usable.nonzero()[0]) == train_idx
    mixed = set()
    for _ in range(200):
        mixed |= {stems[i].song for i, *_ in task.source.plan_example()}
    assert mixed and not mixed & {stems[i].song for i in val_idx}


def test_a_fold_ensemble_checkpoint_rebuilds_its_members_and_averages_their_logits(tmp_path) -> None:
    import pytest

    from selfrefine.models.checkpoints import load_checkpoint, save_checkpoint
    from selfrefine.models.classifier import FoldEnsemble
    from selfrefine.models.registry import ModelError, build

    kwargs = {"sample_rate": 8000, "n_mels": 32, "n_fft": 256, "hop_length": 128}
    torch.manual_seed(0)
    ensemble = FoldEnsemble(3, **kwargs).eval()
    save_checkpoint(
        tmp_path / "model.pt", ensemble, "classifier", {"folds": 3, **kwargs}, fold_songs=[["a"], ["b"], ["c"]]
    )
    loaded, package = load_checkpoint(tmp_path / "model.pt")
    assert type(loaded) is FoldEnsemble and len(loaded.members) == 3
    waves = torch.randn(2, 1, 8000)
    with torch.no_grad():
        members = torch.stack([m(waves) for m in loaded.members])
        assert torch.allclose(loaded(waves), members.mean(0), atol=1e-6)
        assert torch.allclose(loaded(waves), ensemble(waves), atol=1e-6)
        assert not torch.allclose(members[0], members[1])  # independently initialised members
    with pytest.raises(ModelError, match="class Nope is not InstrumentClassifier"):
        build("classifier", kwargs, "Nope")
