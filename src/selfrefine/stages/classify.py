"""Stage ``classify@<round>``: mix-train a refinement round's classifier and score it on clean test mixtures.

With ``refine.folds`` k > 1 it mix-trains k classifiers, one per fold of songs held out, saved together as a
:class:`~selfrefine.models.classifier.FoldEnsemble` (the refine stage gives each fold to the member that
never trained on it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfrefine import distributed, paths, plots
from selfrefine.config import Params
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem, read_label_table, song_folds
from selfrefine.data.mixing import LabelMixer
from selfrefine.devices import device
from selfrefine.models.checkpoints import save_checkpoint
from selfrefine.models.classifier import FoldEnsemble
from selfrefine.models.registry import check_block
from selfrefine.outputs import atomic_path, file_digest, write_json, write_npz
from selfrefine.stages.common import index_rows, skip, stem_store
from selfrefine.stages.entry import main
from selfrefine.training.loop import fingerprint, log_history, train
from selfrefine.training.mixtrain import FixedMixtures, MixTraining, predict_mixtures, score_on_mixtures

log = logging.getLogger("selfrefine.stages.classify")  # not __name__: run as __main__


def run(params: Params, round_key: str, table: str) -> dict[str, float] | None:
    """Mix-train on label table ``table``; write the model, its validation predictions, curves and metrics.

    Args:
        params: the pipeline's params.
        round_key: the round (a key of ``refine.rounds``); names the outputs.
        table: the label table it trains on (``refine.rounds[round_key]``).
    """
    check_block("classifier", params.classifier.model)
    out = paths.classifier_dir(round_key)
    metrics = paths.metrics("classifier", round_key)
    run_name = f"classify_{round_key}"
    paths.require(paths.label_table(table))
    stems = read_label_table(paths.label_table(table))
    if not stems:
        skip(
            metrics,
            [out, paths.curves(run_name), paths.training_plot(run_name).parent],
            f"label table '{table}' is empty (no ground truth): round '{round_key}' skipped",
        )
        return None
    paths.require(paths.INDEX)  # its test rows: the clean test mixtures
    tp = params.classifier.train
    kwargs = {**params.classifier.model, "sample_rate": params.audio.sample_rate}
    store = stem_store(params, [s.path for s in stems])
    digest = file_digest(paths.label_table(table)) + store.digest()
    folds = params.refine.folds
    if folds == 1:  # the paper: one classifier, trained on every song, relabels them all
        task = MixTraining(stems, store, kwargs, tp, params.seed, digest)
        model, result = train(task, params.seed, paths.CHECKPOINTS / f"{run_name}.pt", paths.curves(run_name))
        tasks, histories, fold_songs, saved_kwargs = [task], [result.history], None, kwargs
        seconds = result.seconds
    else:  # out-of-fold: member j never sees fold j's songs, which it alone relabels (refine stage)
        fold_songs = song_folds(stems, folds, params.seed)
        model = FoldEnsemble(folds, **kwargs)
        tasks, histories, seconds = [], [], 0.0
        for j, held_out in enumerate(fold_songs):
            log.info("classify@%s: fold %d/%d (%d songs held out)", round_key, j + 1, folds, len(held_out))
            held = set(held_out)
            keep = [i for i, s in enumerate(stems) if s.song not in held]
            seed = params.seed + 1000 * j
            part = store.subset(keep)
            task = MixTraining([stems[i] for i in keep], part, kwargs, tp, seed, f"{digest}:{folds}:{part.digest()}")
            member, history, took = _fold_member(task, seed, run_name, j)
            model.members[j].load_state_dict(member.state_dict())
            tasks.append(task)
            histories.append(history)
            seconds += took
        saved_kwargs = {"folds": folds, **kwargs}
    if not distributed.is_main():
        return None  # rank 0 writes the outputs
    model.eval()
    save_checkpoint(
        out / "model.pt",
        model,
        "classifier",
        saved_kwargs,
        crop_seconds=tp.crop_seconds,
        trained_on=table,
        steps=tp.steps,
        history=histories[0] if folds == 1 else histories,
        fold_songs=fold_songs,
    )
    # each member's predictions on its own (noisy, held-out-song) validation mixtures, pooled
    model.to(device())  # scoring runs on the accelerator when there is one
    members = [model] if folds == 1 else list(model.members)
    val_probs, val_targets = [], []
    for member, task in zip(members, tasks, strict=True):
        val_probs.append(predict_mixtures(member, task.val))
        val_targets.append(task.val.targets)
    write_npz(out / "validation.npz", probs=np.concatenate(val_probs), targets=np.concatenate(val_targets))
    title = f"classifier, round {round_key} (trained on {table} labels)"
    for j, history in enumerate(histories):
        name = "curves.png" if folds == 1 else f"curves_fold{j}.png"
        fold = "" if folds == 1 else f", fold {j} held out"
        plots.training_curves(paths.training_plot(run_name).with_name(name), history, title + fold)
    for j in range(folds if folds > 1 else 0):  # the ensemble is written: its finished members are no longer needed
        _member_file(run_name, j).unlink(missing_ok=True)
    test = score_on_mixtures(model, FixedMixtures(_clean_test_mixer(params), tp.test_mixtures))
    lasts = [{k: v for k, v in h[-1].items() if k != "step"} for h in histories]
    validation = lasts[0] if folds == 1 else {k: float(np.mean([x[k] for x in lasts])) for k in lasts[0]}
    write_json(
        metrics,
        {
            "trained_on": table,
            "folds": folds,
            "test_clean_mixtures": test,
            "validation_noisy_mixtures": validation,
            **({} if folds == 1 else {"validation_noisy_mixtures_per_fold": lasts}),
        },
    )
    log.info(
        "classify@%s: clean test exact-match %.3f, macro F1 %.3f", round_key, test["exact_match"], test["macro_f1"]
    )
    return {"train": seconds}


def _member_file(run_name: str, fold: int) -> Path:
    return paths.CHECKPOINTS / f"{run_name}_fold{fold}.done.pt"


def _fold_member(task: MixTraining, seed: int, run_name: str, fold: int) -> tuple[nn.Module, list[dict], float]:
    """Train fold ``fold``'s member, or reload it when an interrupted run of the stage already finished it.

    A member's own training resumes from its last checkpoint (:func:`train`); a finished member is kept
    (``checkpoints/<run>_fold<j>.done.pt``, with its run identity) until the whole ensemble is written, so a
    stage killed in fold j retrains none of the folds before it.

    Returns:
        (member, curve history, training seconds).
    """
    done, curves = _member_file(run_name, fold), paths.curves(run_name) / f"fold_{fold}"
    run_id = fingerprint(task.identity, task.config.identity(), seed)
    if done.is_file():
        state = torch.load(done, map_location="cpu", weights_only=False)
        if state["run_id"] == run_id:
            log.info("%s: fold %d was finished by an interrupted run; reloaded from %s", run_name, fold, done)
            member = task.build()
            member.load_state_dict(state["model"])
            if distributed.is_main():
                log_history(curves, state["history"])  # the stage's outputs were cleared before this run
            return member.eval(), state["history"], state["seconds"]
    member, result = train(task, seed, paths.CHECKPOINTS / f"{run_name}_fold{fold}.pt", curves)
    if distributed.is_main():
        state = {"run_id": run_id, "model": member.state_dict(), "history": result.history, "seconds": result.seconds}
        with atomic_path(done) as tmp, tmp.open("wb") as f:
            torch.save(state, f)
    return member, result.history, result.seconds


def _clean_test_mixer(params: Params) -> LabelMixer:
    """Mixtures of the clean test split (targets: file names, which are true there)."""
    rows = index_rows("test")
    stems = [LabelledStem(r["song"], r["stem"], r["path"], frozenset({r["stem"]})) for r in rows]
    crop = samples(params.classifier.train.crop_seconds, params.audio.sample_rate)
    store = stem_store(params, [s.path for s in stems])
    return LabelMixer(store, stems, crop, params.classifier.train.max_stems, 0.0, params.seed + 100)


if __name__ == "__main__":
    main(
        run,
        ("round_key", "refinement round (a key of refine.rounds)"),
        ("table", "label table it mix-trains on (refine.rounds[round])"),
        ranks=True,
    )
