"""Mix-training of the instrument classifier (the paper's step 1), as a task of the one loop.

The classifier is trained on random mixtures of stems from the (noisy) pool, each mixture labelled
with the union of its stems' current labels (:class:`selfrefine.data.mixing.LabelMixer`). Validation
mixtures are drawn the same way from held-out *songs of the same noisy pool*: no clean data is
assumed. Where a clean test split exists, the classifier is also scored on clean mixtures.
"""

from __future__ import annotations

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


def draw_mixtures(mixer: LabelMixer, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` fixed mixtures: ``(n, channels, crop)`` audio and ``(n, 4)`` bool targets."""
    waves, targets = mixer.batch(n)
    return waves, targets.numpy() > 0.5


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
        self.source = LabelMixer(store, stems, crop, tp.max_stems, tp.gain_db, seed + 1, among=train_idx)
        val_mixer = LabelMixer(store, stems, crop, tp.max_stems, tp.gain_db, seed + 2, among=val_idx)
        self.val_waves, self.val_targets = draw_mixtures(val_mixer, tp.val_mixtures)
        self.augment = GainEQ(tp.gain_db, tp.eq_probability)
        self.bce = nn.BCEWithLogitsLoss()
        self.config = LoopConfig(
            steps=tp.steps,
            batch_size=tp.batch_size,
            lr=tp.lr,
            weight_decay=tp.weight_decay,
            eval_every=tp.eval_every,
            checkpoint_every=tp.eval_every,
        )
        loop_params = {k: v for k, v in asdict(tp).items() if k != "test_mixtures"}
        self.identity = (model_kwargs, loop_params, seed, store.silence_db, data_digest)

    def build(self) -> nn.Module:
        return build("classifier", self.model_kwargs)

    def loss(self, model: nn.Module, waves: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce(model(self.augment.train()(waves)), targets)

    def validate(self, model: nn.Module) -> dict[str, float]:
        probs = predict(model, self.val_waves)  # (val_mixtures, 4), computed on the model's device
        loss = float(
            self.bce(
                torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6)),
                torch.from_numpy(self.val_targets.astype(np.float32)),
            )
        )
        scores = multilabel_scores(self.val_targets, probs >= 0.5, list(CLASSES))
        return {
            "val_loss": loss,
            "val_exact_match": scores["exact_match"],
            "val_macro_f1": scores["macro_f1"],
            "val_calibration_error": calibration_error(self.val_targets, probs),
        }


def score_on_mixtures(model: nn.Module, waves: torch.Tensor, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """Classifier metrics (:func:`selfrefine.evaluation.metrics.multilabel_scores`) at ``threshold``."""
    probs = predict(model, waves)
    return multilabel_scores(targets, probs >= threshold, list(CLASSES))
