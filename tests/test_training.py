"""The one training loop: seeding before building, resuming after a kill, and run identity."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from selfrefine.training.loop import LoopConfig, live_folder, train


class Regression:
    """A seeded batch source: y = x @ w + noise, drawn (plan: one row per example) and computed (render)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.w = torch.tensor([[1.0], [-2.0], [0.5]])

    def plan(self, size: int):
        return self.rng.standard_normal((size, 4))

    def render(self, plan):
        rows = torch.from_numpy(plan).float()
        x, noise = rows[:, :3], rows[:, 3:]
        return x, x @ self.w + 0.01 * noise

    def batch(self, size: int):
        return self.render(self.plan(size))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class TinyTask:
    """A linear model on :class:`Regression`; ``fail_at`` raises on that loss call (a kill)."""

    name = "tiny"

    def __init__(
        self,
        fail_at: int | None = None,
        identity: str = "a",
        dropout: float = 0.0,
        workers: int = 0,
        precision: str = "fp32",
    ) -> None:
        self.config = LoopConfig(
            steps=12, batch_size=8, lr=0.05, eval_every=4, checkpoint_every=4, workers=workers, precision=precision
        )
        self.dtypes: set[torch.dtype] = set()
        self.source = Regression(1)
        self.identity = identity
        self.fail_at, self.calls, self.dropout = fail_at, 0, dropout

    def build(self) -> nn.Module:
        return nn.Sequential(nn.Linear(3, 8), nn.Dropout(self.dropout), nn.Linear(8, 1))

    def loss(self, model, x, y):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        out = model(x)
        self.dtypes.add(out.dtype)
        return nn.functional.mse_loss(out, y)

    def validate(self, model) -> dict:
        x, y = Regression(99).batch(16)
        return {"val_loss": float(nn.functional.mse_loss(model(x), y))}


def _train(tmp_path: Path, name: str, task: TinyTask, seed: int = 0):
    return train(task, seed, tmp_path / f"{name}.pt", tmp_path / f"live_{name}")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_the_seed_pins_the_initial_weights_whatever_ran_before(tmp_path: Path) -> None:
    torch.manual_seed(123)  # another stage's draws before this one
    a, _ = _train(tmp_path, "a", TinyTask(dropout=0.2))
    torch.randn(1000)
    b, _ = _train(tmp_path, "b", TinyTask(dropout=0.2))
    for x, y in zip(_weights(a), _weights(b), strict=True):
        assert torch.equal(x, y)
    c, _ = _train(tmp_path, "c", TinyTask(dropout=0.2), seed=1)
    assert not all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(c), strict=True))


def test_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    reference, full = _train(tmp_path, "ref", TinyTask(dropout=0.2))
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "cut", TinyTask(fail_at=7, dropout=0.2))
    state = torch.load(tmp_path / "cut.pt", weights_only=False)
    assert state["step"] == 4
    assert state["optimizer"]["state"][0]["step"].item() == 4
    task = TinyTask(dropout=0.2)
    resumed, result = _train(tmp_path, "cut", task)
    assert result.resumed_from == 4 and task.calls == 8, "only the missing steps are trained"
    for a, b in zip(_weights(reference), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert [row["step"] for row in result.history] == [4, 8, 12]
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in full.history]
    assert not (tmp_path / "cut.pt").exists(), "a finished run leaves no checkpoint to resume"


def test_a_task_is_told_each_step_before_its_loss_resumed_runs_included(tmp_path: Path) -> None:
    class Stepped(TinyTask):
        def begin_step(self, step: int) -> None:
            self.steps.append(step)

    first = Stepped(fail_at=7)
    first.steps = []
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "s", first)
    assert first.steps == list(range(7))
    resumed = Stepped()
    resumed.steps = []
    _train(tmp_path, "s", resumed)
    assert resumed.steps == list(range(4, 12))  # from the checkpoint at step 4, as the schedule must


@pytest.mark.parametrize(("identity", "seed"), [("other params", 0), ("a", 1)])
def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path: Path, identity: str, seed: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "x", TinyTask(fail_at=7))
    task = TinyTask(identity=identity)
    _, result = _train(tmp_path, "x", task, seed=seed)
    assert result.resumed_from == 0 and task.calls == 12


def test_curves_are_logged_for_every_evaluation(tmp_path: Path) -> None:
    _, result = _train(tmp_path, "curves", TinyTask())
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    tsv = (tmp_path / "live_curves" / "plots" / "metrics" / "val_loss.tsv").read_text().splitlines()
    assert len(tsv) == 1 + 3


def test_curves_appear_at_their_path_only_when_training_ends_and_a_resumed_run_logs_them_all(tmp_path: Path) -> None:
    def run(name: str, task: TinyTask) -> None:
        with live_folder(tmp_path / name) as folder:
            train(task, 0, tmp_path / f"{name}.pt", folder)

    run("whole", TinyTask())
    with pytest.raises(KeyboardInterrupt):
        run("cut", TinyTask(fail_at=7))  # killed after the step-4 evaluation had logged its row
    assert not (tmp_path / "cut").exists(), "an interrupted run publishes no curves"
    (tmp_path / ".cut.stale.tmp").mkdir()  # what a SIGKILL leaves beside the path
    run("cut", TinyTask())
    assert not list(tmp_path.glob(".cut.*")), "folders left by a killed run are removed"

    def tsv(name: str) -> dict[str, str]:
        root = tmp_path / name
        return {str(f.relative_to(root)): f.read_text() for f in sorted(root.rglob("*.tsv"))}

    assert tsv("cut") == tsv("whole") and len(tsv("whole")["plots/metrics/val_loss.tsv"].splitlines()) == 1 + 3


def test_worker_processes_change_nothing_and_a_killed_multi_worker_run_resumes_exactly(tmp_path: Path) -> None:
    reference, full = _train(tmp_path, "ref", TinyTask(dropout=0.2))
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "cut", TinyTask(fail_at=7, dropout=0.2, workers=2))
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["step"] == 4
    task = TinyTask(dropout=0.2, workers=2)
    resumed, result = _train(tmp_path, "cut", task)
    assert result.resumed_from == 4 and task.calls == 8
    for a, b in zip(_weights(reference), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in full.history]


def test_bf16_runs_the_forward_pass_in_bfloat16_and_still_learns(tmp_path: Path) -> None:
    task = TinyTask(precision="bf16")
    model, result = _train(tmp_path, "bf16", task)
    assert task.dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters()), "weights stay fp32"
    assert result.history[-1]["val_loss"] < 0.7 * result.history[0]["val_loss"]
    fp32 = TinyTask()
    _train(tmp_path, "fp32", fp32)
    assert fp32.dtypes == {torch.float32}


def _rank(rank: int, world: int, port: int, folder: str) -> None:
    """One rank of a gloo run of :class:`TinyTask` (started by torch.multiprocessing)."""
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.chdir(folder)
    from selfrefine import distributed

    model, result = train(TinyTask(workers=rank % 2), 0, Path(folder) / "ddp.pt", Path(folder) / "live_ddp")
    torch.save({"weights": _weights(model), "history": result.history}, Path(folder) / f"rank{rank}.pt")
    distributed.stop()


def test_two_gloo_ranks_train_the_one_process_model_on_the_same_global_batches(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    reference, full = _train(tmp_path, "ref", TinyTask())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for a, b in zip(ranks[0]["weights"], ranks[1]["weights"], strict=True):
        assert torch.equal(a, b), "DDP keeps the ranks' weights identical"
    for a, b in zip(_weights(reference), ranks[0]["weights"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # gradients summed in another order
    losses = [r["train_loss"] for r in ranks[0]["history"]]
    assert losses == pytest.approx([r["train_loss"] for r in full.history], rel=1e-5)
    assert ranks[1]["history"] == [], "rank 0 alone validates and logs"
    assert (tmp_path / "live_ddp").is_dir() and not (tmp_path / "ddp.pt").exists()
