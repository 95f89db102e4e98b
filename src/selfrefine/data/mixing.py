"""Random mixing: the examples both the classifier and the separators train on.

- :class:`LabelMixer` (mix-training, the paper's core trick): a mixture of k random stems, k in
  ``1..max_stems``, each from a random song with a random crop and gain; its target is the *union*
  of the stems' current label sets. A correct drum stem mixed with a "vocals" file that really
  holds drums and vocals is a correctly labelled example, whatever the vocals label says.
- :class:`SourceMixer` (separator training, as Demucs does it): one stem per class, each from that
  class's pool, random song, crop, gain, sign and time shift; the target is the stack of stems.

Both are seeded batch sources whose generator state is checkpointed, so a resumed run draws the
same examples an uninterrupted one would. A batch is drawn in two steps: :meth:`plan` makes every
random draw (cheap, in the training process, so the generator state is exact at every step) and
:meth:`render` reads and mixes the audio (the costly part, which data-loader workers do in parallel:
:mod:`selfrefine.data.loader`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from selfrefine import CLASSES
from selfrefine.data import effects as fx
from selfrefine.data.labels import LabelledStem, labels_to_vector
from selfrefine.data.stems import StemStore
from selfrefine.errors import UserError


class _Seeded:
    """A batch source with a checkpointable numpy generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def _gain(rng: np.random.Generator, gain_db: float) -> float:
    return float(10 ** (rng.uniform(-gain_db, gain_db) / 20))


class LabelMixer(_Seeded):
    """Random mixtures of labelled stems with union-of-labels targets.

    Args:
        store: the stems' audio.
        stems: their label sets (same order as ``store``).
        crop: crop length in samples.
        max_stems: mixtures hold 1..max_stems stems.
        gain_db: each stem's gain is uniform in +/- this many dB.
        seed: random seed.
        among: mix only these stem indices (default: all), e.g. the training songs of a split.
        effects: probability of each random effect on each stem (:mod:`selfrefine.data.effects`; 0: none,
            and no draws for them, so the mixtures are those of a mixer without effects).
    """

    def __init__(
        self,
        store: StemStore,
        stems: Sequence[LabelledStem],
        crop: int,
        max_stems: int,
        gain_db: float,
        seed: int,
        among: Sequence[int] | None = None,
        effects: float = 0.0,
    ) -> None:
        super().__init__(seed)
        self.store = store
        self.effects = effects
        self.targets = np.stack([labels_to_vector(s.labels) for s in stems])
        chosen = np.zeros(len(stems), dtype=bool)
        chosen[list(range(len(stems)) if among is None else among)] = True
        self.usable = chosen & np.array([not store.is_silent(i) for i in range(len(store))])
        self.crop = crop
        self.max_stems = max_stems
        self.gain_db = gain_db

    def plan_example(self) -> list[tuple]:
        """Draw one mixture: ``[(stem index, gain, crop start, effects), ...]`` (every random draw, no audio read)."""
        rng = self.rng
        k = int(rng.integers(1, self.max_stems + 1))
        candidates = np.flatnonzero(self.usable)
        if not len(candidates):
            raise UserError("every stem of the pool is silent; nothing to mix (check data.silence_db)")
        chosen = rng.choice(candidates, size=min(k, len(candidates)), replace=False)
        plan = []
        for i in chosen:
            gain = _gain(rng, self.gain_db)
            start = self.store.crop_start(int(i), self.crop, rng)
            plan.append((int(i), gain, start, fx.draw(rng, self.effects, self.store.sample_rate)))
        return plan

    def render_example(self, plan: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """The ``(channels, crop)`` mixture and ``(4,)`` union-of-labels target a plan describes."""
        mix = np.zeros((self.store.channels, self.crop), dtype=np.float32)
        for i, gain, start, effects in plan:
            mix += gain * fx.apply(self.store.render(i, start, self.crop), self.store.sample_rate, effects)
        return mix, self.target(plan)

    def target(self, plan: list[tuple]) -> np.ndarray:
        """The ``(4,)`` union-of-labels target of a planned mixture (no audio read)."""
        target = np.zeros(len(CLASSES), dtype=np.float32)
        for i, *_ in plan:
            target = np.maximum(target, self.targets[i])
        return target

    def plan(self, size: int) -> list:
        """The draws of a batch of ``size`` mixtures (advances the generator as :meth:`batch` does)."""
        return [self.plan_example() for _ in range(size)]

    def render(self, plan: list) -> tuple[torch.Tensor, torch.Tensor]:
        """``(size, channels, crop)`` mixtures and ``(size, 4)`` multi-hot targets of a planned batch."""
        examples = [self.render_example(p) for p in plan]
        return (
            torch.from_numpy(np.stack([e[0] for e in examples])),
            torch.from_numpy(np.stack([e[1] for e in examples])),
        )

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(size, channels, crop)`` mixtures and ``(size, 4)`` multi-hot targets."""
        return self.render(self.plan(size))


class SourceMixer(_Seeded):
    """Random one-stem-per-class mixtures for separator training.

    Args:
        store: the stems' audio.
        pools: ``{class: [store index, ...]}``; every class needs at least one stem.
        segment: example length in samples.
        gain_db: per-source gain uniform in +/- this many dB.
        shift: maximum random time shift in samples (the crop is drawn ``shift`` longer and cut).
        seed: random seed.
        label_sets: every store index's label set, for pools that hold stems of several classes
            (``separate.pool: partial``). Then a stem drawn for class ``c`` stands for every class of its set:
            the classes after ``c`` draw no stem of their own, their slots stay silent and the example's
            ``groups`` say which estimates sum to the stem (:meth:`render`). ``None``: one class per stem.
    """

    def __init__(
        self,
        store: StemStore,
        pools: dict[str, list[int]],
        segment: int,
        gain_db: float,
        shift: int,
        seed: int,
        label_sets: Sequence[frozenset[str]] | None = None,
    ) -> None:
        super().__init__(seed)
        alone = pools if label_sets is None else {c: [i for i in p if label_sets[i] == {c}] for c, p in pools.items()}
        empty = [c for c in CLASSES if not alone.get(c)]
        if empty:
            why = "is empty: no training stem qualifies" if label_sets is None else "has no stem labelled with it alone"
            raise UserError(
                f"the pool of '{empty[0]}' {why} under separate.pool; check the label table or use more data"
            )
        self.store = store
        self.pools = pools
        self.segment = segment
        self.gain_db = gain_db
        self.shift = shift
        self.members = None
        if label_sets is not None:
            self.members = {i: tuple(CLASSES.index(c) for c in CLASSES if c in label_sets[i]) for p in pools.values()
                            for i in p}  # fmt: skip

    def plan_example(self) -> list[tuple | None]:
        """Draw one example: per class ``(stem index, crop start, shift offset, gain, negate, swap channels)``;
        with label sets, a seventh field (the classes the stem stands for) or ``None`` for a class an earlier
        stem stands for."""
        rng = self.rng
        plan: list[tuple | None] = []
        covered: set[int] = set()
        for k, c in enumerate(CLASSES):
            if k in covered:
                plan.append(None)
                continue
            pool = (
                self.pools[c]
                if self.members is None
                else [i for i in self.pools[c] if not covered & set(self.members[i])]
            )
            i = pool[int(rng.integers(len(pool)))]
            start = self.store.crop_start(i, self.segment + self.shift, rng)
            offset = int(rng.integers(0, self.shift + 1))
            gain = _gain(rng, self.gain_db)
            negate = bool(rng.random() < 0.5)
            swap = bool(self.store.channels == 2 and rng.random() < 0.5)
            if self.members is None:
                plan.append((i, start, offset, gain, negate, swap))
            else:
                covered.update(self.members[i])
                plan.append((i, start, offset, gain, negate, swap, self.members[i]))
        return plan

    def render_example(self, plan: list[tuple | None]) -> np.ndarray:
        """The ``(4, channels, segment)`` sources a plan describes; their sum is the mixture."""
        sources = []
        for draw in plan:
            if draw is None:
                sources.append(np.zeros((self.store.channels, self.segment), dtype=np.float32))
                continue
            i, start, offset, gain, negate, swap = draw[:6]
            audio = self.store.render(i, start, self.segment + self.shift)
            audio = audio[:, offset : offset + self.segment] * gain
            if negate:
                audio = -audio
            if swap:
                audio = audio[::-1]
            sources.append(audio)
        return np.stack(sources).astype(np.float32)

    @staticmethod
    def groups(plan: list[tuple | None]) -> np.ndarray:
        """``(4, 4)`` 0/1 matrix of a plan with label sets: row ``k`` marks the classes whose estimates sum to
        slot ``k``'s stem (the identity for one class per stem; a zero row for a slot an earlier stem covers)."""
        groups = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.float32)
        for k, draw in enumerate(plan):
            if draw is not None:
                groups[k, list(draw[6])] = 1.0
        return groups

    def plan(self, size: int) -> list:
        """The draws of a batch of ``size`` examples (advances the generator as :meth:`batch` does)."""
        return [self.plan_example() for _ in range(size)]

    def render(self, plan: list) -> tuple[torch.Tensor, ...]:
        """``(size, channels, segment)`` mixtures and ``(size, 4, channels, segment)`` sources of a planned batch;
        with label sets also the ``(size, 4, 4)`` :meth:`groups`."""
        sources = torch.from_numpy(np.stack([self.render_example(p) for p in plan]))
        if self.members is None:
            return sources.sum(dim=1), sources
        return sources.sum(dim=1), sources, torch.from_numpy(np.stack([self.groups(p) for p in plan]))

    def batch(self, size: int) -> tuple[torch.Tensor, ...]:
        """``(size, channels, segment)`` mixtures and ``(size, 4, channels, segment)`` sources (and groups)."""
        return self.render(self.plan(size))
