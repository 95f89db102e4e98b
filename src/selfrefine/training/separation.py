"""Separator training on per-class pools built from a label table, as a task of the one loop.

Pool policy (``separate.pool``):

- ``single`` (default): a stem joins the pool of class ``c`` when its label set is exactly ``{c}``;
  stems with several instruments or none are left out, so no target ever holds another source.
- ``named``: a stem joins the pool of its file-name class when its label set contains that class
  (keeps merged stems, whose extra instrument then leaks into the target).
- ``partial`` (partial-label supervision): a stem joins the pool of every class its label set holds; drawn,
  it stands for all of them and supervises the *sum* of their estimates (:class:`Grouped`), so a stem with
  two instruments still trains the separator without teaching it to put both in one source.

Ranked pools (``separate.keep`` < 1): each class keeps the share of its pool that the refining classifier is
likeliest to have labelled right (:func:`selfrefine.data.labels.build_pools`). Validation examples come from
the held-out songs' ``single`` pools for ``single`` and ``partial`` and are never ranked, so one table's
validation set is the same under every such option: its validation SDR compares them on the noisy-label side
alone.

Loss (``separators.<name>.train``): the separator's ``loss``, optionally truncated
(``truncate_quantile``, after ``truncate_after`` of the steps; :func:`truncated_mean`: per source, over the
global batch, ranked relative to each target's level), a noise-robust alternative (or complement) to refining
the labels.

Examples are random one-stem-per-class mixes (:class:`selfrefine.data.mixing.SourceMixer`), as Demucs
trains; validation examples are mixed from the pools of held-out songs, never trained on.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES, distributed
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem, build_pools, split_songs
from selfrefine.data.mixing import SourceMixer
from selfrefine.data.stems import StemStore
from selfrefine.devices import model_device
from selfrefine.evaluation.metrics import global_sdr
from selfrefine.models.registry import build, loss
from selfrefine.training.loop import LoopConfig


def model_kwargs(block: dict[str, Any], sample_rate: int, channels: int, segment_seconds: float) -> dict[str, Any]:
    """A separator's constructor kwargs: its params block plus what the data and training decide."""
    return {
        **block,
        "sources": list(CLASSES),
        "audio_channels": channels,
        "samplerate": sample_rate,
        "segment": segment_seconds,
    }


def group(groups: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum per-source tensors ``x`` ``(B, S, ...)`` over each example's groups ``(B, S, S)``
    (:meth:`selfrefine.data.mixing.SourceMixer.groups`): row ``g`` of the result is the sum of the sources
    group ``g`` marks."""
    return torch.einsum("bgs,bs...->bg...", groups.to(x.dtype), x)


class Grouped:
    """A separator whose estimates come out summed over each example's groups, for any loss: ``model(mix)`` and
    X-UMX's ``separate`` are grouped, everything else is the model's own."""

    def __init__(self, model: nn.Module, groups: torch.Tensor) -> None:
        self._model, self._groups = model, groups

    def __call__(self, mix: torch.Tensor) -> torch.Tensor:
        return group(self._groups, self._model(mix))

    def separate(self, mix: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(group(self._groups, x) for x in self._model.separate(mix, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def active_mean(terms: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """Mean of the ``(B, S)`` loss terms of the slots that hold a stem (``active``; a group's other slots are
    empty); a loss with one column per example averages every example."""
    if active is None or terms.shape[1] != active.shape[1]:
        return terms.mean()
    active = active.to(terms.dtype)
    return (terms * active).sum() / active.sum()


def truncated_mean(
    losses: torch.Tensor, quantile: float, levels: torch.Tensor | None = None, active: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of the loss terms that each source keeps after loss truncation (the rest get no gradient).

    A stem whose label is wrong makes its examples' loss large and its gradient wrong; each step leaves out,
    *per source* (a column of ``losses``, ``(B, S)``; ``(B, 1)`` for a loss that mixes the sources), the
    ``floor((1 - quantile) * B)`` terms of the global batch that rank highest, as the strongest SDX'23
    label-noise entries did. They rank by ``losses / levels``: each term relative to its target's level, so a
    loud example does not rank high for being loud (``levels`` ``None``: the losses themselves). Under DDP the
    ranking spans every rank's share (one threshold per source for the global batch) and the mean is over the
    kept terms of all ranks. A batch too small to leave one term out keeps every term; terms tied with the
    last kept one stay. ``active`` ``(B, S)`` (partial-label groups): only those terms count, per source.
    """
    scores = (losses.detach() / levels if levels is not None else losses.detach()).float()
    if active is not None and active.shape == scores.shape:
        scores = scores.masked_fill(~active, float("inf"))  # empty slots rank last and are never kept
        everyone = distributed.gather(scores)
        present = torch.isfinite(everyone).sum(0)
        drop = torch.floor((1.0 - quantile) * present + 1e-9).long()
        last = (present - drop - 1).clamp(min=0)
        threshold = everyone.sort(dim=0).values.gather(0, last[None])[0]
        keep = ((scores <= threshold) & active).to(losses.dtype)
    else:
        everyone = distributed.gather(scores)
        total = everyone.shape[0]
        drop = int(np.floor((1.0 - quantile) * total + 1e-9))
        if drop == 0:
            return losses.mean()
        threshold = everyone.sort(dim=0).values[total - drop - 1]  # per source, the highest score kept
        keep = (scores <= threshold).to(losses.dtype)
    kept = distributed.total(float(keep.sum()))
    return (losses * keep).sum() * distributed.world_size() / kept


def target_levels(sources: torch.Tensor, columns: int, loss_name: str) -> torch.Tensor:
    """Each loss term's target level, what :func:`truncated_mean` ranks relative to: the loss a silent estimate
    would get, ``mean |target|`` for ``l1`` and ``mean target²`` otherwise (``mse``; X-UMX's multidomain loss,
    whose magnitude term grows with the square of the level), per example and source, or per example where the
    loss has one column. ``sources`` is ``(B, S, C, T)``."""
    power = 1 if loss_name == "l1" else 2
    per_source = sources.detach().abs().pow(power).flatten(2).mean(-1)
    levels = per_source if columns == per_source.shape[1] else per_source.mean(1, keepdim=True)
    return levels + 1e-8


class SeparatorTraining:
    """Task: train separator ``name`` (a registry name) on the pools of a label table.

    Args:
        name: the separator; selects its model class and ``train.loss`` among its losses.
        kwargs: its constructor kwargs (see :func:`model_kwargs`).
        stems: the label table's stems (``store`` holds their audio, same order).
        store: stem audio.
        pool_policy: ``single``, ``named`` or ``partial`` (``separate.pool``).
        train_params: :class:`selfrefine.config.SeparatorTrainParams`.
        seed: seeds the song split and the mixers.
        data_digest: digest of the label table and the stems' audio (part of the run's identity).
        keep: the share of each pool kept (``separate.keep``; < 1 needs ``probabilities``).
        probabilities: the table's per-class probabilities (:func:`selfrefine.data.labels.read_probabilities`).
    """

    def __init__(
        self,
        name: str,
        kwargs: dict[str, Any],
        stems: list[LabelledStem],
        store: StemStore,
        pool_policy: str,
        train_params,
        seed: int,
        data_digest: str,
        workers: int = 0,
        keep: float = 1.0,
        probabilities: np.ndarray | None = None,
    ) -> None:
        tp = train_params
        self.name = f"train-{name}"
        self.separator, self.kwargs, self.store, self.stems = name, kwargs, store, list(stems)
        self.loss_fn, self.loss_name = loss(name, tp.loss), tp.loss
        self.truncate, self.truncate_from, self.step = tp.truncate_quantile, int(tp.truncate_after * tp.steps), 0
        train_idx, val_idx = split_songs(stems, tp.val_fraction, seed, f"{name}.train.val_fraction")
        self.pools = build_pools(stems, pool_policy, train_idx, keep, probabilities)
        segment = samples(tp.segment_seconds, store.sample_rate)
        shift = samples(tp.shift_seconds, store.sample_rate)
        label_sets = [s.labels for s in stems] if pool_policy == "partial" else None
        self.source = SourceMixer(store, self.pools, segment, tp.gain_db, shift, seed + 1, label_sets)
        val_pools = build_pools(stems, "named" if pool_policy == "named" else "single", val_idx)
        self.val_mix, self.val_sources = SourceMixer(store, val_pools, segment, 0.0, 0, seed + 2).batch(tp.val_examples)
        self.config = LoopConfig.from_params(tp, tp.checkpoint_every, workers, grad_clip=tp.grad_clip)
        ranked = () if keep >= 1.0 else (keep,)
        self.identity = (kwargs, asdict(tp), pool_policy, seed, store.silence_db, data_digest, *ranked)

    def build(self) -> nn.Module:
        return build(self.separator, self.kwargs)

    def begin_step(self, step: int) -> None:
        """The loop's step about to run (0-based): decides whether truncation is on yet."""
        self.step = step

    def loss(
        self, model: nn.Module, mix: torch.Tensor, sources: torch.Tensor, groups: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The batch's loss; with ``groups`` (``separate.pool: partial``) on the grouped estimates and stems."""
        active = None
        if groups is not None:
            model, sources, active = Grouped(model, groups), group(groups, sources), groups.sum(-1) > 0
        if self.truncate is None or self.step < self.truncate_from:
            if active is None:
                return self.loss_fn(model, mix, sources)
            return active_mean(self.loss_fn(model, mix, sources, reduce=False), active)
        terms = self.loss_fn(model, mix, sources, reduce=False)
        levels = target_levels(sources, terms.shape[1], self.loss_name)
        return truncated_mean(terms, self.truncate, levels, active)

    def validate(self, model: nn.Module) -> dict[str, float]:
        losses, sdrs = [], []
        device = model_device(model)
        for i in range(0, len(self.val_mix), 8):
            mix, sources = self.val_mix[i : i + 8].to(device), self.val_sources[i : i + 8].to(device)
            losses.append(float(self.loss_fn(model, mix, sources)) * len(mix))
            sdrs += [global_sdr(r.cpu().numpy(), e.cpu().numpy()) for r, e in zip(sources, model(mix))]
        sdr = np.mean(sdrs, axis=0)
        return {
            "val_loss": sum(losses) / len(self.val_mix),
            "val_sdr": float(sdr.mean()),
            **{f"val_sdr_{c}": float(v) for c, v in zip(CLASSES, sdr)},
        }

    def pool_sizes(self) -> dict[str, int]:
        """Training stems per class."""
        return {c: len(p) for c, p in self.pools.items()}
