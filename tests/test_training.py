from pathlib import Path

import pytest
import torch
from torch import nn

from selfrefine.training import LoopConfig, fit, open_live


class Regression:
    """A seeded batch source: y = x @ w + noise."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.w = torch.tensor([[1.0], [-2.0], [0.5]])

    def batch(self, size: int):
        x = torch.randn(size, 3, generator=self.generator)
        return x, x @ self.w + 0.01 * torch.randn(size, 1, generator=self.generator)

    def state_dict(self) -> dict:
        return {"g": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["g"])


def _run(tmp_path: Path, name: str, fail_at: int | None = None, run_id: str = "a"):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    calls = {"n": 0}

    def loss_fn(m, x, y):
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise KeyboardInterrupt("killed")
        return nn.functional.mse_loss(m(x), y)

    config = LoopConfig(steps=12, batch_size=8, lr=0.05, eval_every=4, checkpoint_every=4, name=name)
    result = fit(model, Regression(1), loss_fn, lambda m: {"val_loss": 0.0}, config,
                 tmp_path / f"{name}.pt", run_id, open_live(tmp_path / f"live_{name}"))
    return model, result, calls["n"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    reference, full, _ = _run(tmp_path, "ref")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "cut", fail_at=7)
    state = torch.load(tmp_path / "cut.pt", weights_only=False)
    assert state["step"] == 4
    assert state["optimizer"]["state"][0]["step"].item() == 4
    resumed, result, calls = _run(tmp_path, "cut")
    assert result.resumed_from == 4 and calls == 8, "only the missing steps are trained"
    for a, b in zip(reference.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    assert [row["step"] for row in result.history] == [4, 8, 12]
    assert [r["train_loss"] for r in result.history] == pytest.approx([r["train_loss"] for r in full.history])
    assert not (tmp_path / "cut.pt").exists(), "a finished run leaves no checkpoint to resume"


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "x", fail_at=7)
    _, result, calls = _run(tmp_path, "x", run_id="other params")
    assert result.resumed_from == 0 and calls == 12
