"""Training batches, drawn in the training process and rendered by prefetching data-loader workers.

A mixer (:mod:`selfrefine.data.mixing`) draws a batch in two steps: ``plan`` makes every random draw,
``render`` reads and mixes the audio. :func:`batches` keeps the planning in the training process, in
order, and hands the rendering to ``torch.utils.data`` workers. So the batches do not depend on the
number of workers (0 renders in the training process, as before), and the generator state after each
*consumed* batch is known exactly: a checkpoint stores it, and a resumed run draws the same batches an
uninterrupted one would, whatever the worker count of either.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class Mixer(Protocol):
    """What :func:`batches` needs of a batch source (:class:`~selfrefine.data.mixing.LabelMixer`, ...)."""

    def plan(self, size: int) -> Any: ...

    def render(self, plan: Any) -> tuple[torch.Tensor, ...]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Batches(Protocol):
    """A stream of training batches whose state is checkpointed."""

    def next(self) -> tuple[torch.Tensor, ...]: ...

    def state_dict(self) -> dict: ...

    def close(self) -> None: ...


class Direct:
    """Batches planned and rendered in the training process (``num_workers: 0``).

    ``part`` selects this rank's examples of each planned batch (all of them by default).
    """

    def __init__(self, mixer: Mixer, batch_size: int, part: slice = slice(None)) -> None:
        self.mixer, self.batch_size, self.part = mixer, batch_size, part

    def next(self) -> tuple[torch.Tensor, ...]:
        return self.mixer.render(self.mixer.plan(self.batch_size)[self.part])

    def state_dict(self) -> dict:
        return self.mixer.state_dict()

    def close(self) -> None:
        pass


class _Plans(Sampler):
    """Endless batch plans, drawn in order in the training process; records the state after each."""

    def __init__(self, mixer: Mixer, batch_size: int, part: slice, states: collections.deque) -> None:
        self.mixer, self.batch_size, self.part, self.states = mixer, batch_size, part, states

    def __iter__(self) -> Iterator[Any]:
        while True:
            plan = self.mixer.plan(self.batch_size)
            self.states.append(self.mixer.state_dict())
            yield plan[self.part]


class _Render(Dataset):
    """Renders a plan (in a worker process)."""

    def __init__(self, mixer: Mixer) -> None:
        self.mixer = mixer

    def __getitem__(self, plan: Any) -> tuple[torch.Tensor, ...]:
        return self.mixer.render(plan)


class Prefetched:
    """Batches rendered by ``workers`` data-loader processes, ``prefetch`` batches ahead per worker.

    Args:
        mixer: plans and renders the batches; its state must be where the next batch starts.
        batch_size: examples per batch.
        workers: worker processes (at least 1).
        prefetch: batches each worker renders ahead.
        pin_memory: page-locked batches, for non-blocking copies to a GPU.
        part: this rank's examples of each planned batch (all of them by default).
    """

    def __init__(
        self,
        mixer: Mixer,
        batch_size: int,
        workers: int,
        prefetch: int = 2,
        pin_memory: bool = False,
        part: slice = slice(None),
    ):
        self.mixer = mixer
        self._consumed = mixer.state_dict()
        self._states: collections.deque = collections.deque()
        loader = DataLoader(
            _Render(mixer),
            batch_size=None,
            sampler=_Plans(mixer, batch_size, part, self._states),
            num_workers=workers,
            prefetch_factor=prefetch,
            pin_memory=pin_memory,
            generator=torch.Generator(),  # the loader's own seed draw leaves the global torch RNG alone
        )
        self._iter = iter(loader)

    def next(self) -> tuple[torch.Tensor, ...]:
        batch = next(self._iter)
        self._consumed = self._states.popleft()
        return batch

    def state_dict(self) -> dict:
        """The mixer's state after the last batch handed out (not after the ones prefetched)."""
        return self._consumed

    def close(self) -> None:
        """Stop the workers and rewind the mixer to just after the last batch handed out."""
        self._iter = None  # the loader's iterator shuts its workers down when it is dropped
        self.mixer.load_state_dict(self._consumed)


def batches(
    mixer: Mixer, batch_size: int, workers: int, pin_memory: bool = False, part: slice = slice(None)
) -> Batches:
    """The training batches of ``mixer``: rendered in-process (``workers == 0``) or by prefetching workers.

    Every rank of a distributed run plans the same global batches of ``batch_size`` and renders only its
    ``part``: no two ranks draw the same example, and together they draw what one process would.
    """
    if workers == 0:
        return Direct(mixer, batch_size, part)
    return Prefetched(mixer, batch_size, workers, pin_memory=pin_memory, part=part)
