"""Stage ``classify@<round>``: mix-train a refinement round's classifier and score it on clean test mixtures.

With ``refine.folds`` k > 1 it mix-trains k classifiers, one per fold of songs held out, saved together as a
:class:`~selfrefine.models.classifier.FoldEnsemble` (the refine stage gives each fold to the member that
never trained on it).
"""

from __future__ import annotations

import logging

from selfrefine import distributed, paths, plots
from selfrefine.config import Params
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem, read_label_table
from selfrefine.data.mixing import LabelMixer
from selfrefine.devices import device
from selfrefine.models.checkpoints import save_checkpoint
from selfrefine.models.registry import check_block
from selfrefine.outputs import atomic_dir, file_digest, write_json, write_npz
from selfrefine.stages.common import index_rows, skip, stem_store
from selfrefine.stages.entry import main
from selfrefine.training.loop import live_folder
from selfrefine.training.mixtrain import FixedMixtures, mix_train, score_on_mixtures

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
    store = stem_store(params, [s.path for s in stems])
    folds = params.refine.folds
    digest = file_digest(paths.label_table(table)) + store.digest()
    checkpoint, curves = paths.CHECKPOINTS / f"{run_name}.pt", paths.curves(run_name)
    with live_folder(curves) as live_dir:
        trained = mix_train(
            stems,
            store,
            params.classifier,
            params.audio.sample_rate,
            params.seed,
            digest,
            folds,
            checkpoint,
            live_dir,
            params.launch.num_workers,
        )
    if not distributed.is_main():
        return None  # rank 0 writes the outputs
    with atomic_dir(out) as folder:  # the model and its validation predictions appear together or not at all
        save_checkpoint(
            folder / "model.pt",
            trained.model,
            "classifier",
            trained.model_kwargs,
            crop_seconds=tp.crop_seconds,
            trained_on=table,
            steps=tp.steps,
            history=trained.histories[0] if folds == 1 else trained.histories,
            fold_songs=trained.fold_songs,
        )
        trained.model.to(device())  # scoring runs on the accelerator when there is one
        probs, targets = trained.validation()
        write_npz(folder / "validation.npz", probs=probs, targets=targets)
    title = f"classifier, round {round_key} (trained on {table} labels)"
    with atomic_dir(paths.training_plot(run_name).parent) as figures:
        for j, history in enumerate(trained.histories):
            name = "curves.png" if folds == 1 else f"curves_fold{j}.png"
            fold = "" if folds == 1 else f", fold {j} held out"
            plots.training_curves(figures / name, history, title + fold)
    trained.discard_finished()  # the ensemble is written: its finished members are no longer needed
    test = score_on_mixtures(trained.model, FixedMixtures(_clean_test_mixer(params), tp.test_mixtures))
    write_json(
        metrics,
        {
            "trained_on": table,
            "folds": folds,
            "test_clean_mixtures": test,
            "validation_noisy_mixtures": trained.mean_validation(),
            **({} if folds == 1 else {"validation_noisy_mixtures_per_fold": trained.last_validation()}),
        },
    )
    log.info(
        "classify@%s: clean test exact-match %.3f, macro F1 %.3f", round_key, test["exact_match"], test["macro_f1"]
    )
    return {"train": trained.seconds}


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
