"""Mix-training of the instrument classifier (the paper's step 1), as a task of the one loop.

The classifier is trained on random mixtures of stems from the (noisy) pool, each mixture labelled
with the union of its stems' current labels (:class:`selfrefine.data.mixing.LabelMixer`). Validation
mixtures are drawn the same way from held-out *songs of the same noisy pool*: no clean data is
assumed. Where a clean test split exists, the classifier is also scored on clean mixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem, split_songs
from selfrefine.data.mixing import LabelMixer
from selfrefine.data.stems import StemStore
from selfrefine.evaluation.metrics import calibration_error, multilabel_scores
from selfrefine.models.classifier import predict
from selfrefine.models.features import GainEQ
from selfrefine.models.registry import build
from selfrefine.training.loop import LoopConfig


class FixedMixtures:
    """``n`` fixed mixtures of a mixer (validation or test), rendered a chunk at a time when scored.

    Only the draws (a few numbers per mixture) and the ``(n, 4)`` bool targets are held, so thousands of
    mixtures of long crops cost no memory; every pass renders the same audio.
    """

    def __init__(self, mixer: LabelMixer, n: int, chunk: int = 64) -> None:
        self.mixer, self.chunk = mixer, chunk
        self.plans = mixer.plan(n)
        self.targets = np.stack([mixer.target(p) for p in self.plans]) > 0.5 if n else np.zeros((0, len(CLASSES)), bool)

    def __len__(self) -> int:
        return len(self.plans)

    def chunks(self) -> Iterator[torch.Tensor]:
        """The mixtures, ``(≤ chunk, channels, crop)`` at a time, in order."""
        for k in range(0, len(self.plans), self.chunk):
            yield self.mixer.render(self.plans[k : k + self.chunk])[0]


def predict_mixtures(model: nn.Module, mixtures: FixedMixtures) -> np.ndarray:
    """``(n, 4)`` probabilities of the classifier on every mixture (on the model's device)."""
    parts = [predict(model, waves) for waves in mixtures.chunks()]
    return np.concatenate(parts) if parts else np.zeros((0, len(CLASSES)), dtype=np.float32)


class MixTraining:
    """Task: mix-train an :class:`~selfrefine.models.classifier.InstrumentClassifier` on a label table.

    Args:
        stems: the labelled training pool (``store`` holds their audio, same order).
        store: stem audio.
        model_kwargs: classifier constructor kwargs (sample rate filled in).
        train_params: :class:`selfrefine.config.MixTrainParams`.
        seed: seeds the song split and the mixers.
        data_digest: digest of the label table and the stems' audio (part of the run's identity).
    """

    name = "mix-train"

    def __init__(
        self,
        stems: list[LabelledStem],
        store: StemStore,
        model_kwargs: dict[str, Any],
        train_params,
        seed: int,
        data_digest: str,
    ) -> None:
        tp = train_params
        self.model_kwargs = model_kwargs
        crop = samples(tp.crop_seconds, store.sample_rate)
        train_idx, val_idx = split_songs(stems, tp.val_fraction, seed, "classifier.train.val_fraction")
        self.source = LabelMixer(
            store, stems, crop, tp.max_stems, tp.gain_db, seed + 1, among=train_idx, effects=tp.effects
        )
        self.val = FixedMixtures(
            LabelMixer(store, stems, crop, tp.max_stems, tp.gain_db, seed + 2, among=val_idx), tp.val_mixtures
        )
        self.augment = GainEQ(tp.gain_db, tp.eq_probability)
        self.bce = nn.BCEWithLogitsLoss()
        self.config = LoopConfig(
            steps=tp.steps,
            batch_size=tp.batch_size,
            lr=tp.lr,
            weight_decay=tp.weight_decay,
            eval_every=tp.eval_every,
            checkpoint_every=tp.eval_every,
            precision=tp.precision,
            workers=tp.num_workers,
        )
        loop_params = {k: v for k, v in asdict(tp).items() if k not in ("test_mixtures", "num_workers")}
        self.identity = (model_kwargs, loop_params, seed, store.silence_db, data_digest)

    def build(self) -> nn.Module:
        return build("classifier", self.model_kwargs)

    def loss(self, model: nn.Module, waves: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce(model(self.augment.train()(waves)), targets)

    def validate(self, model: nn.Module) -> dict[str, float]:
        probs = predict_mixtures(model, self.val)  # (val_mixtures, 4), computed on the model's device
        targets = self.val.targets
        loss = float(
            self.bce(
                torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6)),
                torch.from_numpy(targets.astype(np.float32)),
            )
        )
        scores = multilabel_scores(targets, probs >= 0.5, list(CLASSES))
        return {
            "val_loss": loss,
            "val_exact_match": scores["exact_match"],
            "val_macro_f1": scores["macro_f1"],
            "val_calibration_error": calibration_error(targets, probs),
        }


def score_on_mixtures(model: nn.Module, mixtures: FixedMixtures, threshold: float = 0.5) -> dict:
    """Classifier metrics (:func:`selfrefine.evaluation.metrics.multilabel_scores`) at ``threshold``."""
    probs = predict_mixtures(model, mixtures)
    return multilabel_scores(mixtures.targets, probs >= threshold, list(CLASSES))
