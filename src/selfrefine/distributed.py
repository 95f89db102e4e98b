"""Ranks of a ``torchrun`` launch: which process this is, and what the processes share.

A training stage started with ``--nproc N`` (``launch.nproc`` in params.yaml) hands itself to torch's
launcher (``torch.distributed.run``), which starts N ranks with ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` set. Without them (a plain ``python`` run) there is one rank and nothing here does
anything: the default path has no process group at all.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of ranks (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this rank writes outputs: checkpoints, curves, models, metrics, timings."""
    return rank() == 0


def start() -> None:
    """Join the process group of a multi-rank launch (NCCL on GPUs, else gloo); a no-op for one rank."""
    if world_size() > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def stop(wait: bool = True) -> None:
    """Leave the process group, if any.

    Args:
        wait: first wait for every rank to get here (rank 0 after writing the outputs), so that no rank
            tears the group down under another; False after an error, when the others may never arrive.
    """
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def share(batch: int) -> slice:
    """This rank's part of a global batch of ``batch`` examples (contiguous, equal parts).

    Raises:
        ValueError: ``batch`` is not a multiple of the number of ranks.
    """
    world = world_size()
    if batch % world:
        raise ValueError(f"a batch of {batch} cannot be split evenly over {world} ranks")
    part = batch // world
    return slice(rank() * part, (rank() + 1) * part)


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks (``value`` itself for one rank)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def total(value: float) -> float:
    """The sum of ``value`` over the ranks (``value`` itself for one rank)."""
    return mean(value) * world_size() if dist.is_initialized() else value


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape on each), concatenated along dimension 0 in rank order (``tensor``
    itself for one rank). No gradient flows through it."""
    if not dist.is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
