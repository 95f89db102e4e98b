"""Random mixing: the examples both the classifier and the separators train on.

- :class:`LabelMixer` (mix-training, the paper's core trick): a mixture of k random stems, k in
  ``1..max_stems``, each from a random song with a random crop and gain; its target is the *union*
  of the stems' current label sets. A correct drum stem mixed with a "vocals" file that really
  holds drums and vocals is a correctly labelled example, whatever the vocals label says.
- :class:`SourceMixer` (separator training, as Demucs does it): one stem per class, each from that
  class's pool, random song, crop, gain, sign and time shift; the target is the stack of stems.

Both are seeded batch sources whose generator state is checkpointed, so a resumed run draws the
same examples an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from selfrefine import CLASSES
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
    ) -> None:
        super().__init__(seed)
        self.store = store
        self.targets = np.stack([labels_to_vector(s.labels) for s in stems])
        chosen = np.zeros(len(stems), dtype=bool)
        chosen[list(range(len(stems)) if among is None else among)] = True
        self.usable = chosen & np.array([not store.is_silent(i) for i in range(len(store))])
        self.crop = crop
        self.max_stems = max_stems
        self.gain_db = gain_db

    def example(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One mixture.

        Returns:
            (mixture ``(channels, crop)``, target ``(4,)``, indices of the stems mixed).
        """
        rng = self.rng
        k = int(rng.integers(1, self.max_stems + 1))
        candidates = np.flatnonzero(self.usable)
        if not len(candidates):
            raise UserError("every stem of the pool is silent; nothing to mix (check data.silence_db)")
        chosen = rng.choice(candidates, size=min(k, len(candidates)), replace=False)
        mix = np.zeros((self.store.channels, self.crop), dtype=np.float32)
        target = np.zeros(len(CLASSES), dtype=np.float32)
        for i in chosen:
            mix += _gain(rng, self.gain_db) * self.store.crop(int(i), self.crop, rng)
            target = np.maximum(target, self.targets[i])
        return mix, target, [int(i) for i in chosen]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(size, channels, crop)`` mixtures and ``(size, 4)`` multi-hot targets."""
        examples = [self.example() for _ in range(size)]
        return (
            torch.from_numpy(np.stack([e[0] for e in examples])),
            torch.from_numpy(np.stack([e[1] for e in examples])),
        )


class SourceMixer(_Seeded):
    """Random one-stem-per-class mixtures for separator training.

    Args:
        store: the stems' audio.
        pools: ``{class: [store index, ...]}``; every class needs at least one stem.
        segment: example length in samples.
        gain_db: per-source gain uniform in +/- this many dB.
        shift: maximum random time shift in samples (the crop is drawn ``shift`` longer and cut).
        seed: random seed.
    """

    def __init__(
        self, store: StemStore, pools: dict[str, list[int]], segment: int, gain_db: float, shift: int, seed: int
    ) -> None:
        super().__init__(seed)
        empty = [c for c in CLASSES if not pools.get(c)]
        if empty:
            raise UserError(
                f"the pool of '{empty[0]}' is empty: no training stem qualifies under separate.pool; "
                "check the label table or use more data"
            )
        self.store = store
        self.pools = pools
        self.segment = segment
        self.gain_db = gain_db
        self.shift = shift

    def example(self) -> np.ndarray:
        """``(4, channels, segment)`` sources; their sum is the mixture."""
        rng = self.rng
        sources = []
        for c in CLASSES:
            i = self.pools[c][int(rng.integers(len(self.pools[c])))]
            audio = self.store.crop(i, self.segment + self.shift, rng)
            offset = int(rng.integers(0, self.shift + 1))
            audio = audio[:, offset : offset + self.segment] * _gain(rng, self.gain_db)
            if rng.random() < 0.5:
                audio = -audio
            if audio.shape[0] == 2 and rng.random() < 0.5:
                audio = audio[::-1]
            sources.append(audio)
        return np.stack(sources).astype(np.float32)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(size, channels, segment)`` mixtures and ``(size, 4, channels, segment)`` sources."""
        sources = torch.from_numpy(np.stack([self.example() for _ in range(size)]))
        return sources.sum(dim=1), sources
