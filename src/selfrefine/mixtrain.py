"""Mix-training of the instrument classifier (the paper's step 1).

The classifier is trained on random mixtures of stems from the (noisy) pool, each mixture labelled
with the union of its stems' current labels (:class:`selfrefine.mixing.LabelMixer`). Validation
mixtures are drawn the same way from held-out *songs of the same noisy pool*: no clean data is
assumed. Where a clean test split exists, the classifier is also scored on clean mixtures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.classifier import InstrumentClassifier, predict
from selfrefine.audio import samples
from selfrefine.data import LabelledStem, StemStore, split_songs
from selfrefine.errors import UserError
from selfrefine.features import GainEQ
from selfrefine.metrics import calibration_error, multilabel_scores
from selfrefine.mixing import LabelMixer
from selfrefine.training import LoopConfig, LoopResult, fit, fingerprint, open_live


def draw_mixtures(mixer: LabelMixer, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` fixed mixtures: ``(n, channels, crop)`` audio and ``(n, 4)`` bool targets."""
    waves, targets = mixer.batch(n)
    return waves, targets.numpy() > 0.5


@dataclass
class MixTrainOutcome:
    """A mix-trained classifier and what was measured while training it."""

    model: InstrumentClassifier
    result: LoopResult
    val_probs: np.ndarray  # (val_mixtures, 4)
    val_targets: np.ndarray  # (val_mixtures, 4) bool, from the pool's current labels


def mix_train(
    stems: list[LabelledStem],
    store: StemStore,
    model_kwargs: dict,
    train_params,
    seed: int,
    checkpoint: Path,
    live_dir: Path,
    run_key: str,
) -> MixTrainOutcome:
    """Mix-train a classifier on ``stems`` with their current label sets.

    Args:
        stems: the labelled training pool (``store`` holds their audio, same order).
        store: stem audio.
        model_kwargs: :class:`InstrumentClassifier` kwargs (sample rate filled in).
        train_params: :class:`selfrefine.config.MixTrainParams`.
        seed: random seed.
        checkpoint: resumable training state.
        live_dir: dvclive folder for the curves.
        run_key: digest of the label table and the stems' audio, so changed data never resumes an old run.
    """
    torch.manual_seed(seed)
    tp = train_params
    crop = samples(tp.crop_seconds, store.sample_rate)
    train_idx, val_idx = split_songs(stems, tp.val_fraction, seed)
    if not train_idx or not val_idx:
        raise UserError(f"classifier.train.val_fraction {tp.val_fraction} leaves no training or no validation song "
                         f"among {len({s.song for s in stems})} songs; use more songs or another fraction")
    train_mixer = _subset_mixer(store, stems, train_idx, crop, tp, seed + 1)
    val_waves, val_targets = draw_mixtures(_subset_mixer(store, stems, val_idx, crop, tp, seed + 2), tp.val_mixtures)
    model = InstrumentClassifier(**model_kwargs)
    augment = GainEQ(tp.gain_db, tp.eq_probability)
    bce = nn.BCEWithLogitsLoss()

    def loss_fn(m: nn.Module, waves: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return bce(m(augment.train()(waves)), targets)

    def validate(m: nn.Module) -> dict[str, float]:
        probs = predict(m, val_waves)  # (val_mixtures, 4), computed on the model's device
        loss = float(bce(torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6)),
                         torch.from_numpy(val_targets.astype(np.float32))))
        scores = multilabel_scores(val_targets, probs >= 0.5, list(CLASSES))
        return {"val_loss": loss, "val_exact_match": scores["exact_match"], "val_macro_f1": scores["macro_f1"],
                "val_calibration_error": calibration_error(val_targets, probs)}

    config = LoopConfig(steps=tp.steps, batch_size=tp.batch_size, lr=tp.lr, weight_decay=tp.weight_decay,
                        eval_every=tp.eval_every, checkpoint_every=tp.eval_every, name="mix-train")
    loop_params = {k: v for k, v in asdict(tp).items() if k != "test_mixtures"}
    run_id = fingerprint(model_kwargs, loop_params, seed, store.silence_db, run_key)
    live = open_live(live_dir)
    result = fit(model, train_mixer, loss_fn, validate, config, checkpoint, run_id, live)
    live.end()
    return MixTrainOutcome(model, result, predict(model, val_waves), val_targets)


def _subset_mixer(store: StemStore, stems: list[LabelledStem], idx: list[int], crop: int, tp, seed: int) -> LabelMixer:
    """A :class:`LabelMixer` over the stems ``idx`` only."""
    mixer = LabelMixer(store, stems, crop, tp.max_stems, tp.gain_db, seed)
    keep = np.zeros(len(stems), dtype=bool)
    keep[idx] = True
    mixer.usable &= keep
    return mixer


def score_on_mixtures(model: nn.Module, waves: torch.Tensor, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """Classifier metrics (:func:`selfrefine.metrics.multilabel_scores`) of predictions at ``threshold``."""
    probs = predict(model, waves)
    return multilabel_scores(targets, probs >= threshold, list(CLASSES))
