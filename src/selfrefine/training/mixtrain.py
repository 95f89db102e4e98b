"""Mix-training of the instrument classifier (the paper's step 1), as a task of the one loop.

The classifier is trained on random mixtures of stems from the (noisy) pool, each mixture labelled
with the union of its stems' current labels (:class:`selfrefine.data.mixing.LabelMixer`). Validation
mixtures are drawn the same way from held-out *songs of the same noisy pool*: no clean data is
assumed. Where a clean test split exists, the classifier is also scored on clean mixtures.

With k folds (:func:`mix_train`), k classifiers are mix-trained, each on the songs of all folds but one, and
kept together as a :class:`~selfrefine.models.classifier.FoldEnsemble` (refinement gives each fold to the
member that never trained on it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES, distributed
from selfrefine.config import ClassifierParams, MixTrainParams
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem, song_folds, split_songs
from selfrefine.data.mixing import LabelMixer
from selfrefine.data.stems import StemStore
from selfrefine.evaluation.metrics import calibration_error, multilabel_scores
from selfrefine.models.classifier import FoldEnsemble, predict
from selfrefine.models.features import GainEQ
from selfrefine.models.registry import build
from selfrefine.outputs import write_torch
from selfrefine.training.loop import LoopConfig, fingerprint, log_history, train

log = logging.getLogger(__name__)


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
        train_params: ``classifier.train``.
        seed: seeds the song split and the mixers.
        data_digest: digest of the label table and the stems' audio (part of the run's identity).
    """

    name = "mix-train"

    def __init__(
        self,
        stems: list[LabelledStem],
        store: StemStore,
        model_kwargs: dict[str, Any],
        train_params: MixTrainParams,
        seed: int,
        data_digest: str,
        workers: int = 0,
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
        self.config = LoopConfig.from_params(tp, tp.eval_every, workers, weight_decay=tp.weight_decay)
        loop_params = {k: v for k, v in asdict(tp).items() if k != "test_mixtures"}
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


@dataclass
class MixTrained:
    """A round's mix-trained classifier (:func:`mix_train`) and how each of its members was trained.

    Attributes:
        model: the classifier, or with folds the :class:`~selfrefine.models.classifier.FoldEnsemble` of the
            fold members (on the CPU, in eval mode).
        model_kwargs: its checkpoint's constructor kwargs (an ensemble's with ``folds``).
        tasks: each member's task (its validation mixtures), in member order.
        histories: each member's curve history.
        fold_songs: the songs each member never trained on (the ones it alone relabels); None without folds.
        seconds: training wall time of all the members.
        finished: the finished members' files, kept for a rerun until :meth:`discard_finished`.
    """

    model: nn.Module
    model_kwargs: dict[str, Any]
    tasks: list[MixTraining]
    histories: list[list[dict[str, float]]]
    fold_songs: list[list[str]] | None = None
    seconds: float = 0.0
    finished: list[Path] = field(default_factory=list)

    def members(self) -> list[nn.Module]:
        """The classifiers, in the order of :attr:`tasks`."""
        return [self.model] if self.fold_songs is None else list(self.model.members)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """Each member's ``(n, 4)`` probabilities on its own (noisy, held-out-song) validation mixtures, and
        their targets, pooled (on the members' device)."""
        probs = [predict_mixtures(member, task.val) for member, task in zip(self.members(), self.tasks, strict=True)]
        return np.concatenate(probs), np.concatenate([task.val.targets for task in self.tasks])

    def last_validation(self) -> list[dict[str, float]]:
        """Each member's last validation metrics (its history's last row, the step left out)."""
        return [{k: v for k, v in h[-1].items() if k != "step"} for h in self.histories]

    def mean_validation(self) -> dict[str, float]:
        """The classifier's last validation metrics; with folds, the members' mean."""
        lasts = self.last_validation()
        return lasts[0] if self.fold_songs is None else {k: float(np.mean([x[k] for x in lasts])) for k in lasts[0]}

    def discard_finished(self) -> None:
        """Delete the finished members' files; call it once the ensemble is written."""
        for path in self.finished:
            path.unlink(missing_ok=True)


def classifier_kwargs(block: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    """The classifier's constructor kwargs: its params block plus the stems' rate."""
    return {**block, "sample_rate": sample_rate}


def mix_train(
    stems: list[LabelledStem],
    store: StemStore,
    classifier: ClassifierParams,
    sample_rate: int,
    seed: int,
    data_digest: str,
    folds: int,
    checkpoint: Path,
    live_dir: Path,
    workers: int = 0,
) -> MixTrained:
    """Mix-train one classifier on every song (``folds`` 1: the paper), or a fold ensemble.

    With ``folds`` k > 1 the songs are dealt into k folds (:func:`~selfrefine.data.labels.song_folds`) and
    member j, seeded ``seed + 1000 j``, is mix-trained on the songs of the other folds.

    Resumable: each member's training resumes from its last checkpoint (:func:`~selfrefine.training.loop.train`);
    a finished member is kept (``<checkpoint>_fold<j>.done.pt``, with its run's fingerprint) until
    :meth:`MixTrained.discard_finished`, so a run killed in fold j retrains none of the folds before it.

    Args:
        stems: the labelled training pool (``store`` holds their audio, same order).
        store: stem audio.
        classifier: the ``classifier`` params block (its ``model`` kwargs and its ``train`` settings).
        sample_rate: the stems' rate (a classifier kwarg).
        seed: seeds the folds, and each member's training (:class:`MixTraining`).
        data_digest: digest of the label table and the stems' audio (part of each run's identity).
        folds: the number of folds (``refine.folds``).
        checkpoint: the run's resumable state; fold j's files are named after it (``<stem>_fold<j>.pt``).
        live_dir: dvclive folder for the curves; fold j's go to its subfolder ``fold_<j>``.
        workers: data-loader processes (``launch.num_workers``; the batches do not depend on it).
    """
    model_kwargs, train_params = classifier_kwargs(classifier.model, sample_rate), classifier.train
    if folds == 1:
        task = MixTraining(stems, store, model_kwargs, train_params, seed, data_digest, workers)
        model, result = train(task, seed, checkpoint, live_dir)
        return MixTrained(model, model_kwargs, [task], [result.history], seconds=result.seconds)
    fold_songs = song_folds(stems, folds, seed)
    trained = MixTrained(FoldEnsemble(folds, **model_kwargs), {"folds": folds, **model_kwargs}, [], [], fold_songs)
    for j, held_out in enumerate(fold_songs):
        log.info("%s: fold %d/%d (%d songs held out)", checkpoint.stem, j + 1, folds, len(held_out))
        held = set(held_out)
        keep = [i for i, s in enumerate(stems) if s.song not in held]
        member_seed = seed + 1000 * j
        part = store.subset(keep)
        task = MixTraining(
            [stems[i] for i in keep],
            part,
            model_kwargs,
            train_params,
            member_seed,
            f"{data_digest}:{folds}:{part.digest()}",
            workers,
        )
        member_checkpoint = checkpoint.with_name(f"{checkpoint.stem}_fold{j}.pt")
        done = member_checkpoint.with_suffix(".done.pt")
        member, history, took = _fold_member(
            task, member_seed, member_checkpoint, done, live_dir / f"fold_{j}", f"{checkpoint.stem}: fold {j}"
        )
        trained.model.members[j].load_state_dict(member.state_dict())
        trained.tasks.append(task)
        trained.histories.append(history)
        trained.seconds += took
        trained.finished.append(done)
    trained.model.eval()
    return trained


def _fold_member(
    task: MixTraining, seed: int, checkpoint: Path, done: Path, live_dir: Path, name: str
) -> tuple[nn.Module, list[dict], float]:
    """Train a fold's member (``name`` in the log), or reload it from ``done`` when an interrupted run finished it.

    Returns:
        (member, curve history, training seconds).
    """
    run_id = fingerprint(task, seed)
    if done.is_file():
        state = torch.load(done, map_location="cpu", weights_only=False)
        if state["run_id"] == run_id:
            log.info("%s was finished by an interrupted run; reloaded from %s", name, done)
            member = task.build()
            member.load_state_dict(state["model"])
            if distributed.is_main():
                log_history(live_dir, state["history"])  # the stage's outputs were cleared before this run
            return member.eval(), state["history"], state["seconds"]
    member, result = train(task, seed, checkpoint, live_dir)
    if distributed.is_main():
        state = {"run_id": run_id, "model": member.state_dict(), "history": result.history, "seconds": result.seconds}
        write_torch(done, state)
    return member, result.history, result.seconds
