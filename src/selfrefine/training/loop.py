"""The one training loop: the classifier and every separator train through :func:`train`.

A :class:`Task` is what differs between them (how the model is built, the batches, the loss, the
validation); loss choice, devices and precision live here once. The loop seeds torch, *then* builds
the model, so ``seed`` pins the initial weights: the same task and seed give the same model on CPU.

Resumable: every ``checkpoint_every`` steps the model, optimiser,
scheduler, batch-source and torch RNG states and the curve history go to one checkpoint file,
stamped with a fingerprint of everything that defines the run. A rerun with the same fingerprint
(an interrupted ``dvc repro``) resumes there; a different fingerprint starts afresh. A finished run
deletes its checkpoint, so only interrupted runs are ever resumed. Curves go to dvclive (replayed
from the history on resume, since DVC clears a stage's outputs before it runs) in a folder that the stage
publishes at its declared path only when training ends (:func:`live_folder`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from dvclive import Live
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from selfrefine import distributed
from selfrefine.config import TrainParams
from selfrefine.data.loader import Batches, batches
from selfrefine.devices import device, model_device
from selfrefine.errors import UserError
from selfrefine.outputs import atomic_dir, write_torch

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Draws training batches in two steps (:mod:`selfrefine.data.loader`); its state is checkpointed."""

    def plan(self, size: int) -> Any: ...

    def render(self, plan: Any) -> tuple[torch.Tensor, ...]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation and cadence settings of a run."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    eval_every: int = 100
    checkpoint_every: int = 100
    precision: str = "fp32"
    """``fp32``, or ``bf16``: the forward pass and loss under bfloat16 autocast (weights stay fp32)."""
    workers: int = 0
    """Data-loader processes that render batches (0: in the training process). Not part of a run's
    identity: the batches do not depend on it (:mod:`selfrefine.data.loader`)."""

    @classmethod
    def from_params(cls, train_params: TrainParams, every: int, workers: int = 0, **settings: float) -> LoopConfig:
        """The settings of a params block's training run, validated and checkpointed every ``every`` steps.

        Args:
            train_params: a training block (``classifier.train``, ``separators.<name>.train``).
            every: steps between validations, and between checkpoints.
            workers: data-loader processes (``launch.num_workers``); the batches do not depend on it.
            settings: the block's own optimiser settings (``weight_decay``, ``grad_clip``).
        """
        tp = train_params
        return cls(
            steps=tp.steps,
            batch_size=tp.batch_size,
            lr=tp.lr,
            eval_every=every,
            checkpoint_every=every,
            precision=tp.precision,
            workers=workers,
            **settings,
        )

    def identity(self) -> dict:
        """The settings that define the run's result (everything but ``workers``)."""
        return {k: v for k, v in asdict(self).items() if k != "workers"}


def autocast(precision: str, device_type: str):
    """The autocast context of ``precision`` on ``device_type`` (a no-op for fp32)."""
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


class Task(Protocol):
    """One kind of training run: what the loop needs besides its settings.

    Attributes:
        name: names the run in logs, e.g. ``mix-train`` or ``train-demucs``.
        config: optimisation and cadence.
        source: the training batches (seeded; its state is checkpointed).
        identity: JSON-serialisable values that define the run (model kwargs, params, data digests): a
            checkpoint is resumed only by a run of the same identity.
    """

    name: str
    config: LoopConfig
    source: BatchSource
    identity: Any

    def build(self) -> nn.Module:
        """A fresh model (called after seeding)."""
        ...

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of a batch (``extra``: any further tensors the batch source renders)."""
        ...

    # optional: ``begin_step(step)``, called with the 0-based step before its batch's loss (resumes included)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Metrics on fixed held-out examples (the model is in eval mode, gradients off)."""
        ...


@dataclass
class LoopResult:
    """History of a finished run and its training wall time (summed over resumed parts)."""

    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def fingerprint(task: Task, seed: int) -> str:
    """A stable hash of what defines a run of ``task`` from ``seed`` (its identity, settings and seed): a
    checkpoint is resumed only by a run of the same fingerprint."""
    parts = (task.identity, task.config.identity(), seed)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train(task: Task, seed: int, checkpoint: Path, live_dir: Path) -> tuple[nn.Module, LoopResult]:
    """Seed, build ``task``'s model, and train it for ``task.config.steps`` steps (AdamW, one-cycle cosine).

    Args:
        task: what to train.
        seed: seeds torch before the model is built (initial weights, augmentation draws).
        checkpoint: resumable state; resumed when it holds a run of the same task identity and seed.
        live_dir: dvclive folder for the curves.

    Returns:
        The trained model (on the CPU, in eval mode) and its curve history.
    """
    distributed.start()
    torch.manual_seed(seed)
    model = task.build()
    live = open_live(live_dir) if distributed.is_main() else None
    try:
        result = _fit(model, task, checkpoint, fingerprint(task, seed), live)
    finally:
        if live is not None:
            live.end()
    return model, result


class _Step(nn.Module):
    """A task's loss as a module, so that DistributedDataParallel sees every forward pass of the model
    (a loss may call model methods other than ``forward``, as X-UMX's does)."""

    def __init__(self, model: nn.Module, loss: Any) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, inputs: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model, inputs, *targets)


def _fit(model: nn.Module, task: Task, checkpoint: Path, run_id: str, live: Live | None) -> LoopResult:
    """The loop itself; see :func:`train`."""
    config, source = task.config, task.source
    try:
        part = distributed.share(config.batch_size)
    except ValueError as err:
        raise UserError(f"{task.name}: batch_size {err}; make it a multiple of launch.nproc") from None
    model.to(device())
    step_fn: nn.Module = _Step(model, task.loss)
    if distributed.world_size() > 1:
        if model_device(model).type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPUs each rank keeps its own
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            step_fn = _Step(model, task.loss)
        dev = model_device(model)
        step_fn = DistributedDataParallel(step_fn, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.05, anneal_strategy="cos"
    )
    result = LoopResult()
    start_step = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        if state["run_id"] == run_id:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            source.load_state_dict(state["source"])
            torch.set_rng_state(state["torch_rng"])
            start_step = state["step"]
            result.history = state["history"]
            result.seconds = state["seconds"]
            result.resumed_from = start_step
            log.info("%s: resuming from step %d (%s)", task.name, start_step, checkpoint)
            for row in result.history:
                if live is not None:
                    _log_row(live, row)
        else:
            log.info("%s: checkpoint %s is from another run; starting afresh", task.name, checkpoint)
    dev = model_device(model)
    stream = batches(source, config.batch_size, config.workers, pin_memory=dev.type == "cuda", part=part)
    began = time.perf_counter()
    running, seen = 0.0, 0
    try:
        begin_step = getattr(task, "begin_step", None)
        for step in range(start_step, config.steps):
            model.train()
            if begin_step is not None:
                begin_step(step)
            inputs, *targets = (t.to(dev, non_blocking=True) for t in stream.next())
            with autocast(config.precision, dev.type):
                loss = step_fn(inputs, *targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
            seen += 1
            done = step + 1
            if done % config.eval_every == 0 or done == config.steps:
                train_loss = distributed.mean(running / seen)  # every rank's share of the global batches
                running, seen = 0.0, 0
                if not distributed.is_main():  # rank 0 alone validates (on the whole validation set) and logs
                    continue
                model.eval()
                with torch.no_grad():
                    row = {"step": done, "train_loss": train_loss, **task.validate(model)}
                result.history.append(row)
                _log_row(live, row)
                log.info(
                    "%s: step %d/%d %s",
                    task.name,
                    done,
                    config.steps,
                    " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step"),
                )
            if done % config.checkpoint_every == 0 and done < config.steps and distributed.is_main():
                _save(
                    checkpoint,
                    run_id,
                    done,
                    model,
                    optimizer,
                    scheduler,
                    stream,
                    result.history,
                    result.seconds + time.perf_counter() - began,
                )
    finally:
        stream.close()
    model.cpu().eval()
    result.seconds += time.perf_counter() - began
    if distributed.is_main():
        checkpoint.unlink(missing_ok=True)
    return result


def _log_row(live: Live, row: dict[str, float]) -> None:
    live.step = int(row["step"])
    for key, value in row.items():
        if key != "step":
            live.log_metric(key, float(value))
    live.next_step()


def _save(
    path: Path,
    run_id: str,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    source: Batches,
    history: list[dict],
    seconds: float,
) -> None:
    state = {
        "run_id": run_id,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "source": source.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "seconds": seconds,
    }
    write_torch(path, state)


def log_history(directory: Path, history: list[dict[str, float]]) -> None:
    """Write a finished run's curves (its ``history``) to a dvclive folder, as :func:`train` logs them."""
    live = open_live(directory)
    try:
        for row in history:
            _log_row(live, row)
    finally:
        live.end()


@contextlib.contextmanager
def live_folder(path: Path) -> Iterator[Path]:
    """The folder a training stage logs its curves to: a new one beside ``path``, published as ``path`` (the
    stage's declared output) only when the block succeeds (:func:`~selfrefine.outputs.atomic_dir`). A run that is
    killed or fails (a full disk) leaves no curves at ``path`` that could be read as whole; a resumed run logs the
    checkpoint's history again. Other ranks log nothing and get ``path`` itself."""
    if not distributed.is_main():
        yield path
        return
    with atomic_dir(path) as tmp:
        yield tmp


def open_live(directory: Path) -> Live:
    """A dvclive logger writing curves under ``directory`` (no dvc.yaml edits, no experiment commits)."""
    return Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None)
