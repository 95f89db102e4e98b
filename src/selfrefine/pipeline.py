"""The bodies of the model stages: read inputs at the pipeline's paths, call the library, write outputs.

Paths (mirrored in dvc.yaml):

- label tables ``data/labels/<name>.csv``; the index ``data/index.csv``;
- classifier of round r: ``models/classifier/<r>/{model.pt,validation.npz}``, curves
  ``dvclive/classify_<r>/``, test metrics ``metrics/classifier/<r>.json``;
- refinement of round r: its label table, ``metrics/refine/<r>.json``, ``plots/refine/<r>/``;
- separator m: ``models/<m>/model.pt``, curves ``dvclive/train_<m>/``, ``metrics/train/<m>.json``;
- evaluation: ``metrics/separation/<m>.json``, ``plots/separation/``, estimates ``data/estimates/``;
- resumable training state: ``checkpoints/`` (not an output: DVC would delete it before a rerun).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.audio import samples
from selfrefine.config import Params
from selfrefine.data import StemStore, evaluation_songs, labels_path, parse_labels, read_label_table, write_label_table
from selfrefine.models import load_checkpoint, save_checkpoint
from selfrefine.outputs import atomic_dir, atomic_path, file_digest, read_csv, write_csv, write_json, write_text

log = logging.getLogger(__name__)

INDEX = Path("data/index.csv")
CHECKPOINTS = Path("checkpoints")


def _store(params: Params, paths: list[str]) -> StemStore:
    return StemStore(paths, params.audio.sample_rate, params.audio.channels, params.data.silence_db)


def _clean_test_mixer(params: Params, seed: int):
    """A :class:`LabelMixer` over the clean test split (targets: file names, which are true there)."""
    from selfrefine.data import LabelledStem
    from selfrefine.mixing import LabelMixer

    rows = [r for r in read_csv(INDEX) if r["split"] == "test"]
    stems = [LabelledStem(r["song"], r["stem"], r["path"], frozenset({r["stem"]})) for r in rows]
    crop = samples(params.classifier.train.crop_seconds, params.audio.sample_rate)
    tp = params.classifier.train
    return LabelMixer(_store(params, [s.path for s in stems]), stems, crop, tp.max_stems, 0.0, seed)


def _skip(metrics: Path, folders: list[Path], reason: str) -> None:
    """Outputs of a baseline stage that cannot run (no ground truth): each folder holds a SKIPPED note."""
    log.warning("%s", reason)
    for folder in folders:
        write_text(folder / "SKIPPED", f"skipped: {reason}\n")
    write_json(metrics, {"skipped": reason})


def classify(params: Params, round_key: str, table: str) -> None:
    """Stage ``classify@<round_key>``: mix-train on label table ``table``; score on clean test mixtures."""
    from selfrefine import plots
    from selfrefine.mixtrain import draw_mixtures, mix_train, score_on_mixtures

    out = Path("models/classifier") / round_key
    metrics = Path("metrics/classifier") / f"{round_key}.json"
    live_dir = Path("dvclive") / f"classify_{round_key}"
    curves = Path("plots/train") / f"classify_{round_key}"
    stems = read_label_table(labels_path(table))
    if not stems:
        _skip(metrics, [out, live_dir, curves], f"label table '{table}' is empty (no ground truth): round '{round_key}' skipped")
        return
    kwargs = {**params.classifier.model, "sample_rate": params.audio.sample_rate}
    store = _store(params, [s.path for s in stems])
    outcome = mix_train(stems, store, kwargs, params.classifier.train, params.seed, CHECKPOINTS / f"classify_{round_key}.pt",
                        live_dir, file_digest(labels_path(table)) + store.digest())
    tp = params.classifier.train
    save_checkpoint(out / "model.pt", outcome.model, "InstrumentClassifier", kwargs, crop_seconds=tp.crop_seconds,
                    trained_on=table, steps=tp.steps, seconds=outcome.result.seconds, history=outcome.result.history)
    with atomic_path(out / "validation.npz") as tmp, tmp.open("wb") as f:
        np.savez(f, probs=outcome.val_probs, targets=outcome.val_targets)
    plots.training_curves(curves / "curves.png", outcome.result.history,
                          f"classifier, round {round_key} (trained on {table} labels)")
    waves, targets = draw_mixtures(_clean_test_mixer(params, params.seed + 100), tp.test_mixtures)
    test = score_on_mixtures(outcome.model, waves, targets)
    last = outcome.result.history[-1]
    write_json(metrics, {"trained_on": table, "test_clean_mixtures": test,
                         "validation_noisy_mixtures": {k: v for k, v in last.items() if k != "step"}})
    log.info("classify@%s: clean test exact-match %.3f, macro F1 %.3f (%.0f s)", round_key, test["exact_match"],
             test["macro_f1"], outcome.result.seconds)


def refine(params: Params, round_key: str, table: str, refined_table: str) -> None:
    """Stage ``refine@<round_key>``: relabel the stems of ``table`` with the round's classifier."""
    from selfrefine import plots
    from selfrefine.refine import class_thresholds, refinement_scores, relabel, stem_probabilities, table_extras

    metrics = Path("metrics/refine") / f"{round_key}.json"
    plot_dir = Path("plots/refine") / round_key
    stems = read_label_table(labels_path(table))
    if not stems:
        _skip(metrics, [plot_dir], f"no classifier for round '{round_key}' (no ground truth)")
        write_label_table(labels_path(refined_table), [])
        return
    model, package = load_checkpoint(Path("models/classifier") / round_key / "model.pt")
    validation = np.load(Path("models/classifier") / round_key / "validation.npz")
    rp = params.refine
    thresholds = class_thresholds(rp.threshold, validation["targets"], validation["probs"])
    sr = params.audio.sample_rate
    store = _store(params, [s.path for s in stems])
    probs = stem_probabilities(model, store, samples(package["provenance"]["crop_seconds"], sr),
                               samples(rp.hop_seconds, sr), rp.aggregate)
    refined = relabel(stems, probs, thresholds)
    extras = table_extras(stems, refined, probs)
    write_label_table(labels_path(refined_table), refined, extras)
    summary = {"thresholds": dict(zip(CLASSES, map(float, thresholds))), "changed": sum(e["changed"] for e in extras)}
    index = {(r["song"], r["stem"]): r for r in read_csv(INDEX) if r["split"] == "train"}
    rows = [index[(s.song, s.stem)] for s in stems]
    if all(r["truth"] != "?" for r in rows):
        scores = refinement_scores(stems, refined, [parse_labels(r["truth"]) for r in rows],
                                   [r["noise"] for r in rows], probs)
        plots.refinement(plot_dir, scores, probs, [parse_labels(r["truth"]) for r in rows])
        summary.update({k: v for k, v in scores.items() if k not in ("sweep", "confusion")})
        log.info("refine@%s: label accuracy %.3f (file names), %.3f (input) -> %.3f, %d changed", round_key,
                 scores["label_accuracy_noisy"], scores["label_accuracy_input"], scores["label_accuracy_refined"],
                 scores["changed"])
    else:
        plots.probabilities_only(plot_dir, probs)
    write_json(metrics, summary)


def train(params: Params, name: str) -> None:
    """Stage ``train_<name>``: train a separator on the label table ``separate.labels``."""
    from selfrefine import plots
    from selfrefine.models import build
    from selfrefine.models import SEPARATORS
    from selfrefine.separators import model_kwargs, train_separator

    table = labels_path(params.separate.labels)
    stems = read_label_table(table)
    block = getattr(params, name)
    kwargs = model_kwargs(block.model, params.audio.sample_rate, params.audio.channels, block.train.segment_seconds)
    model = build(SEPARATORS[name], kwargs)
    store = _store(params, [s.path for s in stems])
    result, pools = train_separator(
        name, model, kwargs, stems, store, params.separate.pool, block.train, params.seed,
        CHECKPOINTS / f"train_{name}.pt", Path("dvclive") / f"train_{name}", file_digest(table) + store.digest(),
    )
    save_checkpoint(Path("models") / name / "model.pt", model, SEPARATORS[name], kwargs,
                    labels=params.separate.labels, pools=pools, steps=block.train.steps, seconds=result.seconds,
                    history=result.history)
    plots.training_curves(Path("plots/train") / name / "curves.png", result.history,
                          f"{name} trained on {params.separate.labels} labels")
    first, last = result.history[0], result.history[-1]
    parameters = sum(p.numel() for p in model.parameters())
    write_json(Path("metrics/train") / f"{name}.json", {
        "labels": params.separate.labels, "pools": pools, "parameters": parameters,
        "val_loss_first": first["val_loss"], "val_loss": last["val_loss"], "val_sdr": last["val_sdr"],
    })
    log.info("train_%s: %d params, val loss %.4f -> %.4f, val SDR %.2f dB (%.0f s)", name, parameters,
             first["val_loss"], last["val_loss"], last["val_sdr"], result.seconds)


def evaluate(params: Params) -> None:
    """Stage ``evaluate``: separate and score the clean test songs with both separators."""
    from selfrefine import plots
    from selfrefine.evaluation import evaluate_separator
    from selfrefine.models import SEPARATORS

    songs = evaluation_songs(read_csv(INDEX))
    ep = params.evaluate
    results, summaries = {}, {}
    with atomic_dir(Path("data/estimates")) as estimates:
        for name in SEPARATORS:
            model, package = load_checkpoint(Path("models") / name / "model.pt")
            result = evaluate_separator(model, songs, params.audio.sample_rate, params.audio.channels, ep.overlap,
                                        ep.museval, estimates / name)
            results[name] = result
            summaries[name] = {"labels": package["provenance"]["labels"], "songs": result["songs"],
                               "global_sdr": result["global_sdr"], "sdr": result["sdr"]}
            log.info("evaluate %s: global SDR %.2f dB (mean over songs and sources), separation %.1f s, museval %.1f s",
                     name, result["global_sdr"]["mean"]["mean_over_sources"], result["seconds"]["separate"],
                     result["seconds"]["museval"])
    for name, result in results.items():
        write_json(Path("metrics/separation") / f"{name}.json", summaries[name])
        write_json(Path("metrics/separation") / f"{name}_songs.json", result["per_song"])
    rows = [{"model": name, "source": source, "global_sdr": r["global_sdr"]["mean"][source],
             "sdr": r["sdr"]["median"][source] if r["sdr"] else float("nan")}
            for name, r in results.items() for source in CLASSES]
    write_csv(Path("plots/separation/sdr.csv"), rows, ["model", "source", "global_sdr", "sdr"])
    plots.sdr_bars(Path("plots/separation/sdr.png"), rows)
