import torch

from selfrefine.classifier import InstrumentClassifier, predict


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
