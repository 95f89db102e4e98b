"""Stage ``refine@<round>``: relabel every stem of a label table with the round's classifier."""

from __future__ import annotations

import logging

import numpy as np

from selfrefine import CLASSES, paths, plots
from selfrefine.config import Params
from selfrefine.data.audio import samples
from selfrefine.data.labels import parse_labels, read_label_table, write_label_table
from selfrefine.devices import device
from selfrefine.errors import UserError
from selfrefine.models.checkpoints import load_checkpoint
from selfrefine.outputs import atomic_dir, read_csv, write_json
from selfrefine.refine import (
    class_thresholds,
    later_round,
    refinement_scores,
    relabel,
    stem_probabilities,
    table_extras,
)
from selfrefine.stages.common import skip, stem_store
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.refine")  # not __name__: run as __main__


def run(params: Params, round_key: str, table: str) -> None:
    """Write label table ``refined_<round_key>`` from ``table``; score it where the truth is known.

    Args:
        params: the pipeline's params.
        round_key: the round (a key of ``refine.rounds``): its classifier relabels.
        table: the label table the round's classifier was trained on, whose stems it relabels.
    """
    metrics = paths.metrics("refine", round_key)
    plot_dir = paths.refine_plots(round_key)
    out = paths.label_table(paths.refined_table(round_key))
    paths.require(paths.label_table(table))
    stems = read_label_table(paths.label_table(table))
    if not stems:
        skip(metrics, [plot_dir], f"no classifier for round '{round_key}' (no ground truth)")
        write_label_table(out, [])
        return
    folder = paths.classifier_dir(round_key)
    paths.require(folder / "model.pt", paths.TRUTH)
    model, package = load_checkpoint(folder / "model.pt")
    model.to(device())
    validation = np.load(folder / "validation.npz")
    rp = params.refine
    thresholds = class_thresholds(rp.threshold, validation["targets"], validation["probs"])
    sr = params.audio.sample_rate
    store = stem_store(params, [s.path for s in stems])
    crop, hop = samples(package["provenance"]["crop_seconds"], sr), samples(rp.hop_seconds, sr)
    fold_songs = package["provenance"].get("fold_songs")
    if fold_songs is None:  # one classifier relabels every stem it was trained on
        probs = stem_probabilities(model, store, crop, hop, rp.aggregate)
    else:  # out of fold: each fold's stems by the member that never trained on them
        unseen = sorted({s.song for s in stems} - {song for songs in fold_songs for song in songs})
        if unseen:
            raise UserError(
                f"{folder / 'model.pt'}: trained with folds that do not hold song '{unseen[0]}' of '{table}'; "
                f"re-run the classify stage (dvc repro classify@{round_key})"
            )
        probs = np.zeros((len(stems), len(CLASSES)), dtype=np.float32)
        for j, songs in enumerate(fold_songs):
            fold = set(songs)
            ids = [i for i, s in enumerate(stems) if s.song in fold]
            log.info("refine@%s: fold %d/%d, %d stems", round_key, j + 1, len(fold_songs), len(ids))
            probs[ids] = stem_probabilities(model.members[j], store.subset(ids), crop, hop, rp.aggregate)
    if table.startswith("refined_") and rp.later_rounds != "relabel":  # a later round: remedies for drift
        earlier = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in read_csv(paths.label_table(table))])
        refined, probs = later_round(stems, probs, earlier, thresholds, rp.later_rounds, rp.confirm)
        log.info("refine@%s: %s against %s's probabilities", round_key, rp.later_rounds, table)
    else:
        refined = relabel(stems, probs, thresholds)
    extras = table_extras(stems, refined, probs)
    write_label_table(out, refined, extras)
    summary = {
        "folds": 1 if fold_songs is None else len(fold_songs),
        "thresholds": dict(zip(CLASSES, map(float, thresholds))),
        "changed": sum(e["changed"] for e in extras),
    }
    known = {(r["song"], r["stem"]): r for r in read_csv(paths.TRUTH)}
    rows = [known[(s.song, s.stem)] for s in stems]
    if all(r["truth"] != "?" for r in rows):
        truth = [parse_labels(r["truth"]) for r in rows]
        scores = refinement_scores(stems, refined, truth, [r["noise"] for r in rows], probs)
        with atomic_dir(plot_dir) as folder:  # every figure of the round, or none
            plots.refinement(folder, scores, probs, truth)
        summary.update({k: v for k, v in scores.items() if k not in ("sweep", "confusion")})
        log.info(
            "refine@%s: label accuracy %.3f (file names), %.3f (input) -> %.3f, %d changed",
            round_key,
            scores["label_accuracy_noisy"],
            scores["label_accuracy_input"],
            scores["label_accuracy_refined"],
            scores["changed"],
        )
    else:
        with atomic_dir(plot_dir) as folder:
            plots.probabilities_only(folder, probs)
    write_json(metrics, summary)


if __name__ == "__main__":
    main(
        run,
        ("round_key", "refinement round (a key of refine.rounds)"),
        ("table", "label table the round's classifier trained on (refine.rounds[round])"),
    )
