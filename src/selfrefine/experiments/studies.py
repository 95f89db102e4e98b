"""``selfrefine study NAME``: the paper's three open questions, answered where the truth is known.

- ``noise-rate``: the share of noisy labels (``study.noise_rates``, with ``noise.kinds`` as set) and each kind of
  noise alone at ``noise.rate`` (``study.noise_kinds``): swap, merge, silent, and ``foreign`` (another song's
  audio, which nothing in the stem's own song corroborates).
- ``threshold``: ``refine.threshold`` over ``study.thresholds`` (probabilities and ``adaptive``).
- ``iterations``: rounds 1 .. ``study.rounds``, each mix-trained on the round before's labels, with a stopping rule
  that sees only noisy data: stop at the first round from 2 on that changes fewer than ``study.stop_changed`` of
  the label sets (what a user without the truth can measure).

Each point is a set of DVC experiments (:mod:`selfrefine.experiments.queue`: queued, run, resumable with ``--stamp``)
that train the separators of ``study.models`` on the point's refined labels, and on its noisy and clean labels
where the point changes those (noise-rate; the other two studies share one noisy and one clean reference),
``study.seeds`` runs each. From the per-song scores and the refinement metrics kept under
``metrics/studies/<study>/``, :func:`tabulate` writes ``metrics/studies/<study>.json`` (per point: label
accuracy, detection precision / recall, and SDR, the gain over noisy and the share of the noisy -> clean gap
closed with 95 % intervals from the crossed runs x songs analysis of :mod:`selfrefine.evaluation.intervals`), ``plots/studies/<study>.png`` and the study's
section of ``docs/studies.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfrefine import paths
from selfrefine.config import STUDIES, NoiseKinds, Params
from selfrefine.errors import UserError
from selfrefine.evaluation.intervals import METHOD, compare_conditions, holm
from selfrefine.experiments.queue import (
    SEED_KEYS,
    batch_times,
    output,
    run_batch,
    slug,
    song_scores,
    stamp_time,
    tracked_roots,
)
from selfrefine.experiments.report import (
    SCORE_COLUMNS,
    batch_text,
    ci_text,
    pct_text,
    score_row,
    share_text,
    song_matrix,
    update_section,
)
from selfrefine.outputs import read_csv, write_csv, write_json
from selfrefine.paths import refined_table

log = logging.getLogger(__name__)

FOLDER = paths.STUDIES
SHARED = "shared"
"""The point name of a study's shared noisy and clean references (a sweep that does not change them)."""
COLUMNS = ["point", *SCORE_COLUMNS]


@dataclass(frozen=True)
class Point:
    """One swept value: its params overrides and the refined table it is judged by."""

    name: str
    overrides: tuple[tuple[str, str], ...]
    refined: str
    own_references: bool
    """Whether the point changes the noisy and clean tables (then it trains on them itself)."""
    trained_on: str
    """The label table the refined table's round was mix-trained on (and relabelled)."""

    @property
    def round(self) -> str:
        return self.refined.removeprefix("refined_")


def points(study: str, params: Params) -> list[Point]:
    """The grid of ``study`` from ``params.study``."""
    s = params.study
    if study not in STUDIES:
        raise UserError(f"unknown study '{study}'; use one of {', '.join(STUDIES)}")
    have = sorted(int(k) for k in params.refine.rounds if k.isdigit())
    if not have:
        raise UserError("refine.rounds: the studies need a numbered round (e.g. 1: noisy)")
    last, before = f"refined_{have[-1]}", params.refine.rounds[str(have[-1])]
    if study == "noise-rate":
        kinds = [f.name for f in dataclasses.fields(NoiseKinds)]
        grid = [Point(f"rate {r:g}", (("noise.rate", f"{r:g}"),), last, True, before) for r in s.noise_rates]
        grid += [
            Point(f"{k} only", tuple((f"noise.kinds.{o}", "1" if o == k else "0") for o in kinds), last, True, before)
            for k in s.noise_kinds
        ]
        return grid
    if study == "threshold":
        return [Point(f"{t}", (("refine.threshold", f"{t}"),), last, False, before) for t in s.thresholds]
    grid = []
    for r in range(1, s.rounds + 1):
        added = tuple((f"+refine.rounds.{k}", f"refined_{k - 1}") for k in range(have[-1] + 1, r + 1))
        trained_on = params.refine.rounds.get(str(r), f"refined_{r - 1}")
        grid.append(Point(f"{r}", added, f"refined_{r}", False, trained_on))
    return grid


def runs(study: str, params: Params) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """``{(point, table): overrides}`` of every separator-training condition of the study."""
    out: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    grid = points(study, params)
    if not all(p.own_references for p in grid):
        out[(SHARED, "noisy")] = out[(SHARED, "clean")] = ()
    for p in grid:
        for table in ["noisy", p.refined, "clean"] if p.own_references else [p.refined]:
            out[(p.name, table)] = p.overrides
    return out


def experiment_name(study: str, point: str, table: str, seed: int, stamp: str) -> str:
    return f"study-{study}-{slug(point)}-{table}-s{seed}-{stamp}"


def set_args(
    overrides: tuple[tuple[str, str], ...], table: str, seed: int, models: list[str], vary: str = "separators"
) -> list[str]:
    """``dvc exp run`` arguments of one run (and its evaluation, the target); ``vary``: what the seed sets."""
    pairs = [
        *overrides,
        ("separate.labels", table),
        (SEED_KEYS[vary], str(seed)),
        ("separate.models", "[" + ",".join(models) + "]"),
    ]
    return [*(arg for key, value in pairs for arg in ("-S", f"{key}={value}")), "summarize"]


def _labels_at(rev: str, table: str) -> dict[tuple[str, str], str]:
    """A label table of an experiment's commit (a DVC output: read from the cache), ``{(song, stem): labels}``."""
    rows = csv.DictReader(io.StringIO(output(rev, paths.label_table(table))))
    return {(r["song"], r["stem"]): r["labels"] for r in rows}


def label_metrics(rev: str, round_key: str, trained_on: str) -> dict:
    """Label quality of refinement round ``round_key`` and its classifier, from an experiment's commit.

    ``changed_share`` (the share of stems whose label set the round changed from the table it was trained on and
    relabelled, ``trained_on``) needs no truth: it is what the noisy-only stopping rule sees. The accuracies,
    detection precision / recall and clean stems wrongly changed are there only when the truth is known.
    """
    m = json.loads(output(rev, paths.metrics("refine", round_key)))
    c = json.loads(output(rev, paths.metrics("classifier", round_key)))
    before, after = _labels_at(rev, trained_on), _labels_at(rev, refined_table(round_key))
    out = {
        "changed_share": sum(after[k] != before.get(k) for k in after) / max(1, len(after)),
        "changed_from_file_names": m["changed"] / m["stems"],
        "classifier_exact_match": c["test_clean_mixtures"]["exact_match"],
    }
    if "label_accuracy_refined" in m:
        out |= {
            "accuracy_noisy": m["label_accuracy_noisy"],
            "accuracy_trained_on": m["label_accuracy_input"],
            "accuracy_refined": m["label_accuracy_refined"],
            "precision": m["detection"]["precision"],
            "recall": m["detection"]["recall"],
            "clean_wrongly_changed": m["clean_wrongly_changed"],
        }
    return out


def run_study(
    params: Params, study: str, stamp: str | None = None, jobs: int | None = None, poll_seconds: float = 15.0
) -> dict:
    """Queue, run and keep every experiment of ``study`` (see module docstring), then :func:`tabulate`.

    Args:
        params: the committed params (the grid: ``study``).
        study: one of :data:`~selfrefine.config.STUDIES`.
        stamp: names the batch; the stamp of an interrupted study queues only what has not finished.
        jobs: DVC queue workers (default ``study.jobs``).
        poll_seconds: how often the queue is checked.
    """
    grid = points(study, params)
    models = params.study.models
    conditions = runs(study, params)
    tracked_roots([params.data.root, params.data.test_root])
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    queued = stamp_time(stamp)
    names = {
        (pt, t, k): experiment_name(study, pt, t, k, stamp) for pt, t in conditions for k in range(params.study.seeds)
    }
    log.info(
        "study %s: %d points, %d experiments; resume an interruption with `selfrefine study %s --stamp %s`",
        study, len(grid), len(names), study, stamp,
    )  # fmt: skip
    resume = f"`selfrefine study {study} --stamp {stamp}` resumes the study"
    refused: dict[tuple[str, str, int], str] = {}
    found = run_batch(
        names,
        {(pt, t, k): set_args(conditions[(pt, t)], t, k, models, params.study.vary) for pt, t, k in names},
        [paths.SUMMARY.as_posix()],
        jobs or params.study.jobs,
        resume,
        poll_seconds=poll_seconds,
        refusals=refused,
    )
    failed = _refused_points(grid, refused)
    # a point whose refined labels cannot train a separator still has labels to judge: one experiment that
    # stops at its refinement round (restored from DVC's run cache) gives them
    label_names = {p.name: f"study-{study}-{slug(p.name)}-labels-{stamp}" for p in grid if p.name in failed}
    label_runs = run_batch(
        label_names,
        {p.name: _label_args(p) for p in grid if p.name in failed},
        [paths.SUMMARY.as_posix()],
        jobs or params.study.jobs,
        resume,
        poll_seconds=poll_seconds,
    )
    folder = FOLDER / study
    for model in models:
        rows = [
            {"point": pt, **score_row(t, k, r, params.study.vary)}
            for (pt, t, k), node in sorted(found.items())
            if pt not in failed
            for r in song_scores(node["rev"], model)
        ]
        write_csv(folder / f"{model}.csv", rows, COLUMNS)
    labels = {
        p.name: label_metrics(label_runs[p.name]["rev"], p.round, p.trained_on) | {"separators_refused": failed[p.name]}
        if p.name in failed
        else label_metrics(found[(p.name, p.refined, 0)]["rev"], p.round, p.trained_on)
        for p in grid
    }
    write_json(folder / "labels.json", labels)
    # the wall time runs to the last separator experiment; the label runs are run-cache restores (seconds); the
    # workers are those the batch was started with (a resumed batch keeps them)
    earlier = json.loads((folder / "batch.json").read_text()) if (folder / "batch.json").is_file() else {}
    resumed = earlier if earlier.get("stamp") == stamp else None
    write_json(
        folder / "batch.json",
        {
            "stamp": stamp,
            "experiments": len(names),
            "label_runs": len(label_names),
            **batch_times(found, queued, jobs or params.study.jobs, resumed),
        },
    )
    return tabulate(params, study)


def _refused_points(grid: list[Point], refused: dict[tuple[str, str, int], str]) -> dict[str, str]:
    """``{point: reason}`` of the points whose refined table a separator refused to train on (every such
    experiment's reason); a refused reference (noisy or clean) leaves nothing to judge against: an error."""
    out: dict[str, str] = {}
    for (pt, table, seed), reason in sorted(refused.items()):
        point = next((p for p in grid if p.name == pt), None)
        if point is None or table != point.refined:
            raise UserError(f"study: the {table} table of point '{pt}' (seed {seed}) cannot be trained on: {reason}")
        out[pt] = reason
    return out


def _label_args(p: Point) -> list[str]:
    """``dvc exp run`` arguments of a point's labels alone: its overrides, stopping at its refinement round."""
    return [*(arg for key, value in p.overrides for arg in ("-S", f"{key}={value}")), f"refine@{p.round}"]


def stopping_round(labels: dict[str, dict], threshold: float) -> str:
    """The noisy-only stopping rule: the first round from 2 on whose refinement changed fewer than ``threshold``
    of the label sets (the labels have settled); the last round when none did."""
    rounds = list(labels)
    for r in rounds[1:]:
        if labels[r]["changed_share"] < threshold:
            return r
    return rounds[-1]


def tabulate(params: Params, study: str, folder: Path = FOLDER) -> dict:
    """The study's JSON, plot and docs section, from the kept scores and label metrics alone."""
    grid = points(study, params)
    kept = folder / study
    labels_path = kept / "labels.json"
    if not labels_path.is_file():
        raise UserError(f"{labels_path}: no kept results; run `selfrefine study {study}` first")
    labels = json.loads(labels_path.read_text())
    batch = kept / "batch.json"
    result: dict[str, Any] = {
        "study": study,
        "level": 0.95,
        "method": METHOD,
        "models": params.study.models,
        "batch": json.loads(batch.read_text()) if batch.is_file() else None,
        "points": [],
    }
    scores = {}
    for model in params.study.models:
        path = kept / f"{model}.csv"
        if not path.is_file():
            raise UserError(f"{path}: no kept scores; run `selfrefine study {study}` first")
        scores[model] = read_csv(path)
    for p in grid:
        if p.name not in labels:
            raise UserError(f"{labels_path}: no point '{p.name}' (study.* changed?); run `selfrefine study {study}`")
        entry: dict[str, Any] = {
            "point": p.name,
            "overrides": dict(p.overrides),
            "refined": p.refined,
            "labels": labels[p.name],
            "models": {},
        }
        if "separators_refused" in labels[p.name]:  # no separator could train on the refined labels
            entry["refused"] = labels[p.name]["separators_refused"]
            result["points"].append(entry)
            continue
        reference = p.name if p.own_references else SHARED
        for model, rows in scores.items():
            matrices = {
                "noisy": _matrix(rows, reference, "noisy", path),
                "refined": _matrix(rows, p.name, p.refined, path),
                "clean": _matrix(rows, reference, "clean", path),
            }
            if len({(tuple(m[1]), m[2]) for m in matrices.values()}) != 1:
                raise UserError(
                    f"{kept / model}.csv: point '{p.name}' was not run with its references' seeds and songs"
                )
            r = compare_conditions({t: m[0] for t, m in matrices.items()}, ["refined"])
            entry["models"][model] = {
                "noisy": r["noisy"],
                "refined": r["refined"],
                "clean": r["clean"],
                "refined_minus_noisy": r["differences"]["refined"]["minus_noisy"],
                "refined_minus_clean": r["differences"]["refined"]["minus_clean"],
                "gap_closed": r["differences"]["refined"]["gap_closed"],
                "seeds": matrices["refined"][1],
                "songs": len(matrices["refined"][2]),
            }
        result["points"].append(entry)
    if study == "iterations":
        by_round = {e["point"]: e["labels"] for e in result["points"]}
        result["stopping_rule"] = {
            "changed_below": params.study.stop_changed,
            "round": stopping_round(by_round, params.study.stop_changed),
        }
    result["picked"] = picked_point(study, params, result)
    judged = [e for e in result["points"] if "refused" not in e]
    for model in params.study.models:  # every point's gain over noisy is exploratory: one Holm family per model
        gains = [e["models"][model]["refined_minus_noisy"] for e in judged]
        for gain, p in zip(gains, holm([g["p"] for g in gains]), strict=True):
            gain["p_holm"] = p
    result["findings"] = findings(result)
    write_json(folder / f"{study}.json", result)
    plot(paths.study_plot(study), result)
    update_section(paths.STUDIES_DOC, f"study:{study}", section(result))
    log.info(
        "study %s: wrote %s, %s and its section of %s",
        study, folder / f"{study}.json", paths.study_plot(study), paths.STUDIES_DOC,
    )  # fmt: skip
    return result


def picked_point(study: str, params: Params, result: dict) -> str | None:
    """The point a user would pick without the truth, which the study headlines: the round the noisy-only
    stopping rule picks (iterations), the committed ``refine.threshold`` (threshold); none for noise-rate (the
    noise is not a choice)."""
    names = [e["point"] for e in result["points"]]
    if study == "iterations":
        return result["stopping_rule"]["round"]
    if study == "threshold":
        return next((n for n in names if n == f"{params.refine.threshold}"), None)
    return None


def _matrix(rows: list[dict], point: str, table: str, path: Path) -> tuple[np.ndarray, list[int], tuple[str, ...]]:
    mine = [r for r in rows if r["point"] == point]
    if not any(r["labels"] == table for r in mine):
        raise UserError(f"{path}: no runs of {table} at point '{point}'; run the study (with --stamp to resume)")
    matrix, seeds, songs = song_matrix(mine, table)
    return matrix, seeds, tuple(songs)


def findings(result: dict) -> list[str]:
    """Two sentences on what the study shows: the labels, then the separators (from the numbers alone)."""
    pts = result["points"]
    out = []
    known = [e for e in pts if "accuracy_refined" in e["labels"]]
    if known:
        gains = {e["point"]: e["labels"]["accuracy_refined"] - e["labels"]["accuracy_trained_on"] for e in known}
        best, worst = max(gains, key=gains.get), min(gains, key=gains.get)
        peak = max(known, key=lambda e: e["labels"]["accuracy_refined"])
        text = (
            f"Refinement moves the share of right label sets by {100 * gains[best]:+.1f} points at {best} "
            f"and {100 * gains[worst]:+.1f} at {worst}; the refined labels are best at {peak['point']} "
            f"({share_text(peak['labels']['accuracy_refined'])} right)"
        )
        worse = [p for p, g in gains.items() if g < 0]
        if worse:
            text += f", and worse than the labels they were trained on at {', '.join(worse)}"
        out.append(text + ".")
    judged = [e for e in pts if "refused" not in e]
    picked = next((e for e in judged if e["point"] == result.get("picked")), None)
    for model in result["models"] if judged else []:
        closed = {e["point"]: e["models"][model]["gap_closed"] for e in judged}
        gain = {e["point"]: e["models"][model]["refined_minus_noisy"] for e in judged}
        text = f"{model}"
        if picked:
            m = picked["models"][model]
            text += (
                f" at {picked['point']} (the point chosen without the truth): refined − noisy = "
                f"{ci_text(m['refined_minus_noisy'], unit=' dB')}, gap closed {pct_text(m['gap_closed'])}; "
            )
        else:
            text += ": "
        above = [p for p, g in gain.items() if g.get("p_holm", 1) < 0.05 and g["mean"] > 0]
        below = [p for p, g in gain.items() if g.get("p_holm", 1) < 0.05 and g["mean"] < 0]
        text += (
            f"across the {len(gain)} points (exploratory, Holm-adjusted over them), the gain over noisy labels is "
            f"above 0 at {', '.join(above) if above else 'no point'}"
        )
        if below:
            text += f" and below 0 at {', '.join(below)}"
        if len(closed) > 1:
            best = max(closed, key=lambda p: closed[p]["mean"])
            text += (
                f"; the largest share of the gap closed ({pct_text(closed[best])} at {best}) is the best of "
                f"{len(closed)} points and so overstates that point"
            )
        out.append(text + ".")
    refused = [e for e in pts if "refused" in e]
    if refused:
        out.append(
            f"At {', '.join(e['point'] for e in refused)} the method breaks: no separator could be trained on the "
            f"refined labels ({refused[0]['refused']})."
        )
    if "stopping_rule" in result:
        rule = result["stopping_rule"]
        by_truth = max(known, key=lambda e: e["labels"]["accuracy_refined"])["point"] if known else None
        text = (
            f"The noisy-only stopping rule (stop once a round changes fewer than {100 * rule['changed_below']:g} % "
            f"of the label sets) picks round {rule['round']}"
        )
        if by_truth:
            text += f"; the truth would pick round {by_truth}"
        out.append(text + ".")
    return out


def markdown(result: dict) -> str:
    """Per point: labels right (trained on → refined), detection precision / recall, labels changed, the round's
    classifier's exact match on clean test mixtures, and per model the refined labels' global SDR gain over noisy and share of the gap closed, with 95 % intervals."""
    models = result["models"]
    head = (
        "| point | labels right: trained on → refined | precision / recall | labels changed | classifier exact match |"
    )
    head += "".join(f" {m}: refined − noisy (dB) | {m}: gap closed |" for m in models)
    lines = [head, "|---" * (5 + 2 * len(models)) + "|"]
    for e in result["points"]:
        lab = e["labels"]
        right = (
            f"{share_text(lab.get('accuracy_trained_on'))} → {share_text(lab.get('accuracy_refined'))}"
            if "accuracy_refined" in lab
            else ""
        )
        pr = f"{lab['precision']:.3f} / {lab['recall']:.3f}" if "precision" in lab else ""
        cells = [e["point"], right, pr, share_text(lab["changed_share"]), share_text(lab["classifier_exact_match"])]
        for m in models:
            if "refused" in e:
                cells += ["could not train", "—"]
            else:
                cells += [ci_text(e["models"][m]["refined_minus_noisy"]), pct_text(e["models"][m]["gap_closed"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def section(result: dict) -> str:
    """The study's section of docs/studies.md, generated from its JSON."""
    study, batch = result["study"], result["batch"]
    seeds = {len(e["models"][m]["seeds"]) for e in result["points"] if e["models"] for m in result["models"]}
    figure = Path(os.path.relpath(paths.study_plot(study), paths.STUDIES_DOC.parent)).as_posix()
    parts = [
        f"![{study}]({figure})",
        "",
        *(f"- {line}" for line in result["findings"]),
        "",
        markdown(result),
        f"Separators: {', '.join(result['models'])}, {'/'.join(map(str, sorted(seeds)))} runs per label table"
        f" and point; nominal 95 % intervals: {result.get('method', 'paired hierarchical bootstrap')}."
        f" `{paths.study_json(study).as_posix()}`; rerun with `selfrefine study {study}`.",
    ]
    if batch:
        extra = (
            f" Besides them, {batch['label_runs']} label-only run(s) of the points no separator could train on,"
            " restored from DVC's run cache."
            if batch.get("label_runs")
            else ""
        )
        parts.append(f"Wall time: {batch_text(batch)}{extra}")
    return "\n".join(parts) + "\n"


_AXIS = {"noise-rate": "label noise", "threshold": "refine.threshold", "iterations": "refinement round"}


def plot(path: Path, result: dict) -> None:
    """Label quality against the swept value, and per model the share of the SDR gap closed with its interval."""
    from selfrefine.plots import plt, save_figure

    pts = result["points"]
    x = np.arange(len(pts))
    names = [e["point"] for e in pts]
    fig, axes = plt.subplots(1, 1 + len(result["models"]), figsize=(5.0 * (1 + len(result["models"])), 4.2))
    ax = axes[0]
    for key, label in [
        ("accuracy_trained_on", "labels right: trained on"),
        ("accuracy_refined", "labels right: refined"),
        ("precision", "detection precision"),
        ("recall", "detection recall"),
        ("changed_share", "share of labels changed"),
    ]:
        values = [e["labels"].get(key) for e in pts]
        if all(v is not None for v in values):
            ax.plot(x, values, "o-", label=label)
    if "stopping_rule" in result:
        chosen = names.index(result["stopping_rule"]["round"])
        for a in axes:
            a.axvline(chosen, ls="--", color="gray", lw=1, label="noisy-only stopping rule")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_xlabel(_AXIS[result["study"]])
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{result['study']}: labels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    judged = [i for i, e in enumerate(pts) if "refused" not in e]
    refused = [i for i, e in enumerate(pts) if "refused" in e]
    for ax, model in zip(axes[1:], result["models"]):
        bounded = [i for i in judged if not pts[i]["models"][model]["gap_closed"].get("undefined")]
        gaps = [pts[i]["models"][model]["gap_closed"] for i in bounded]
        means = [100 * g["mean"] for g in gaps]
        errors = [[100 * (g["mean"] - g["ci_low"]) for g in gaps], [100 * (g["ci_high"] - g["mean"]) for g in gaps]]
        ax.errorbar(x[bounded], means, yerr=errors, fmt="o", capsize=5, color="black", label="mean, 95 % CI")
        unbounded = [i for i in judged if i not in bounded]
        if unbounded:
            values = [100 * pts[i]["models"][model]["gap_closed"]["mean"] for i in unbounded]
            ax.plot(x[unbounded], values, "o", mfc="none", color="black", label="interval undefined")
        if refused:
            ax.plot(x[refused], [0] * len(refused), "x", color="tab:red", ms=10, mew=2, label="could not train")
        ax.axhline(0, color="tab:red", lw=0.8, label="noisy labels")
        ax.axhline(100, color="tab:green", lw=0.8, label="clean labels")
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_xlabel(_AXIS[result["study"]])
        ax.set_ylabel("noisy → clean SDR gap closed (%)")
        ax.set_title(f"{model}: separation")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)
