"""``selfrefine compare``: the same separators trained on noisy, refined and clean labels, with intervals.

Queues one DVC experiment per label table and run (``dvc exp run --queue -S separate.labels=<t> -S seed=<k>``;
``compare.labels`` x ``compare.seeds``; ``compare.vary: separators`` sets ``separate.seed=<k>`` instead), runs the queue (``dvc queue start``: each
experiment restores every stage it shares with the committed run from DVC's run cache, so only the
separators and their evaluation rerun), and keeps every experiment's per-song, per-source scores in the
repository (``metrics/compare/<model>.csv``, read from the experiment's commit). :func:`tabulate` then
computes, from those files alone, each table's mean global SDR with a 95 % interval and each refined table
against noisy and as a share of the noisy -> clean gap, by the crossed (runs x songs) analysis of
:mod:`selfrefine.evaluation.intervals`, the contrasts of ``compare.primary`` as declared and every other one as
exploratory (Holm-adjusted); and writes ``metrics/compare.json``, ``metrics/compare.md``,
``plots/compare.png``, the results section of ``docs/results.md`` and the README's headline
(``selfrefine compare --tabulate`` redoes just that).

A compared *condition* is a label table, optionally with params overrides after ``@``: the paper's ablations
are ``refined_2@refine.threshold=0.9``, ``refined_2@refine.threshold=adaptive`` and
``refined_2@separate.pool=named`` (each experiment reruns the stages the override touches, e.g. refinement
and the round-2 classifier). Each batch adds its conditions to the kept files and replaces only those
conditions' rows, so an ablation batch reuses the noisy and clean runs of the main one (same seeds). A long
condition may have a short alias (``compare.aliases``), which tables and plots show and ``--labels`` accepts.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from selfrefine import CLASSES, paths
from selfrefine.config import Params, ParamsError, merge_into, parse_params
from selfrefine.errors import UserError
from selfrefine.evaluation.intervals import (
    METHOD,
    compare_conditions,
    crossed,
    difference,
    holm,
    nested_split,
    run_spread,
    spread_ratio,
)
from selfrefine.experiments.compare_docs import (
    compare_plot,
    headline,
    interval_rows,
    markdown,
    results_section,
    round_rows,
    worlds_section,
)
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
from selfrefine.experiments.report import SCORE_COLUMNS, score_row, song_matrix, update_section
from selfrefine.outputs import read_csv, write_csv, write_json, write_text

log = logging.getLogger(__name__)


FOLDER = paths.COMPARE
"""Per model, every experiment's per-song, per-source scores (``<model>.csv``), and the batch's times."""

WORLDS = Path("metrics/worlds")
"""Another generated world's comparison, one folder per world (``<engine>/``): its kept per-song scores as in
:data:`FOLDER` and its ``compare.json``, run in a clone on that world's profile; the worlds section of
docs/results.md sets it beside this one (:func:`other_worlds`)."""


#: What each experiment reproduces: the key numbers (``metrics.json``), which restores every stage it shares with
#: earlier runs from DVC's run cache, so only what the condition changes reruns.
_TARGETS = ("summarize",)

#: Params that ``compare`` itself sets per experiment; a condition may not override them.
_OWN_KEYS = ("separate.labels", *SEED_KEYS.values())


@dataclass(frozen=True)
class Condition:
    """What one row of the comparison trains on: a label table, plus params overrides (``key=value``)."""

    name: str
    table: str
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        """The name in a form git accepts in a ref (experiment names)."""
        return slug(self.name)

    def set_args(self, seed: int, vary: str = "pipeline") -> list[str]:
        """``dvc exp run`` arguments of this condition's run ``seed`` (``vary``: what the seed sets, :data:`SEED_KEYS`)."""
        pairs = [("separate.labels", self.table), (SEED_KEYS[vary], str(seed)), *self.overrides]
        return [arg for key, value in pairs for arg in ("-S", f"{key}={value}")]


def parse_condition(text: str, params: Params, raw: dict | None = None) -> Condition:
    """``TABLE[@key=value]...``, checked: a table the pipeline writes, and overrides that give valid params.

    Args:
        text: the condition as written, e.g. ``refined_2@refine.threshold=0.9``, or its alias in
            ``compare.aliases`` (e.g. ``adaptive``).
        params: the committed params (which label tables exist).
        raw: the params mapping as read from YAML, to validate the overrides against (default: no check of
            the values beyond their keys' format).
    """
    text = params.compare.aliases.get(text, text)
    table, *pairs = [part.strip() for part in text.split("@")]
    overrides = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", key) or not value:
            raise UserError(f"'{text}': expected TABLE@key=value (e.g. refined_2@refine.threshold=0.9), got '{pair}'")
        if key in _OWN_KEYS:
            raise UserError(f"'{text}': compare sets {key} itself; name the table before '@' and use --seeds")
        overrides.append((key, value))
    tables = params.label_tables()
    if raw is not None and overrides:
        data = copy.deepcopy(raw)
        for key, value in overrides:
            nested: Any = yaml.safe_load(value)
            for part in reversed(key.split(".")):
                nested = {part: nested}
            merge_into(data, nested)
        try:
            tables = parse_params(data, f"'{text}'").label_tables()  # an override may add one (filter.models)
        except ParamsError as err:
            raise UserError(str(err)) from None
    if table not in tables:
        raise UserError(f"unknown label table '{table}' in '{text}'; use any of {', '.join(tables)}")
    return Condition(text, table, tuple(overrides))


def experiment_name(condition: Condition | str, seed: int, stamp: str, training: int = 0) -> str:
    """The DVC experiment of one condition and training seed in the batch ``stamp`` (``training`` > 0: a further
    separator training of that replicate, :func:`nested_args`)."""
    slug = condition.slug if isinstance(condition, Condition) else condition
    return f"compare-{slug}-s{seed}" + (f"-j{training}" if training else "") + f"-{stamp}"


NESTED_OFFSET = 1000
"""Separator training ``j`` > 0 of pipeline replicate ``k`` sets ``separate.seed = k + 1000 j``: never a
replicate's own separator seed (``k``)."""


def nested_args(condition: Condition, seed: int, training: int) -> list[str]:
    """``dvc exp run`` arguments of separator training ``training`` > 0 within pipeline replicate ``seed``: the same
    noise draw and classifiers (``seed``), another separator seed."""
    separators = ["-S", f"{SEED_KEYS['separators']}={seed + NESTED_OFFSET * training}"]
    return [*condition.set_args(seed, "pipeline"), *separators]


def _label_quality(rev: str | None, table: str) -> dict | None:
    """How right a refined table is, scored against the truth (analysis only; ``None`` when the truth is unknown or
    the table is not a refinement's): of an experiment's commit ``rev``, or of the workspace when ``None``."""
    if not table.startswith("refined_"):
        return None
    path = paths.metrics("refine", table.removeprefix("refined_"))
    if rev is None and not path.is_file():
        return None
    r = json.loads(output(rev, path) if rev else path.read_text())
    if "label_accuracy_refined" not in r:
        return None
    return {
        "label_accuracy": r["label_accuracy_refined"],
        "detection_precision": r["detection"]["precision"],
        "detection_recall": r["detection"]["recall"],
        "thresholds": r["thresholds"],
    }


def run_comparison(
    params: Params,
    labels: list[str],
    seeds: int,
    stamp: str | None = None,
    poll_seconds: float = 15.0,
    params_path: Path = paths.PARAMS,
    jobs: int | None = None,
    shard: tuple[int, int] | None = None,
    vary: str | None = None,
) -> dict:
    """Queue, run and keep one experiment per condition and seed, then :func:`tabulate` (see module docstring).

    With ``shard`` ``(i, n)`` this machine runs only its share of the batch (every n-th experiment from the i-th,
    in a fixed order) and keeps nothing: each machine pushes its experiments (``dvc exp push``), one machine pulls
    them all (``dvc exp pull``) and runs the same comparison with the same ``stamp`` and no shard, which finds every
    experiment finished, queues none, and keeps and tabulates them.

    Args:
        params: the committed params (models, label tables, primary contrasts).
        labels: conditions to compare (label tables, optionally ``@key=value`` overrides: :func:`parse_condition`).
            ``noisy`` must be among them or already kept with the same seeds.
        seeds: runs per condition (seeds 0 .. seeds - 1).
        stamp: names the batch; reusing the stamp of an interrupted comparison queues only the experiments
            that have not finished. Default: now.
        poll_seconds: how often the queue is checked.
        params_path: the params file the overrides are validated against.
        jobs: queue workers running experiments at once (default: ``compare.jobs``).
        shard: ``(i, n)``: run the i-th of n shares of the batch (0-based); needs ``stamp``.
        vary: what a run's seed sets (``pipeline`` or ``separators``; default ``compare.vary``). Every kept
            condition must have been run the same way (their runs are paired).

    Returns:
        The comparison's table (:func:`tabulate`), or with ``shard`` the names of the shard's experiments.
    """
    models = params.separate.models
    jobs = jobs or params.compare.jobs
    vary = vary or params.compare.vary
    raw = yaml.safe_load(params_path.read_text()) if params_path.is_file() else None
    conditions = [parse_condition(text, params, raw) for text in dict.fromkeys(labels)]
    kept = {m: read_csv(FOLDER / f"{m}.csv") if (FOLDER / f"{m}.csv").is_file() else [] for m in models}
    others = sorted({r["labels"] for m in models for r in kept[m]} - {c.name for c in conditions})
    world = world_of(params)
    kept_world = json.loads(paths.COMPARE_JSON.read_text()).get("world") if paths.COMPARE_JSON.is_file() else None
    if others and kept_world not in (None, world):
        raise UserError(
            f"metrics/compare/: holds runs of the world '{kept_world}' ({', '.join(others)}; {paths.COMPARE_JSON}), "
            f"this batch runs '{world}': their rows would share one table; move metrics/compare/ aside "
            f"(git rm -r metrics/compare) or keep that world in {WORLDS}/{kept_world}/"
        )
    if "noisy" not in labels:
        runs = {int(r["seed"]) for r in kept[models[0]] if r["labels"] == "noisy" and _vary(r) == vary}
        if runs != set(range(seeds)):
            raise UserError(
                "--labels: needs noisy (every other condition is set against it), unless metrics/compare/ "
                f"already holds noisy runs with seeds 0..{seeds - 1} (vary: {vary})"
            )
    other = {_vary(r) for m in models for r in kept[m] if r["labels"] not in labels} - {vary}
    if other:
        raise UserError(
            f"metrics/compare/: kept conditions were run with vary: {other.pop()}, this batch with {vary}; their runs "
            "are not paired: rerun them (--labels) with this vary, or move metrics/compare/ aside"
        )
    tracked_roots([params.data.root, params.data.test_root])
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    queued = stamp_time(stamp)
    by_name = {c.name: c for c in conditions}
    names: dict[tuple, str] = {(c.name, k): experiment_name(c, k, stamp) for c in conditions for k in range(seeds)}
    judged = by_name.get(params.separate.labels)
    trainings = params.compare.separator_runs if vary == "pipeline" and judged and seeds > 1 else 1
    nested = {
        (judged.name, k, j): experiment_name(judged, k, stamp, j) for k in range(seeds) for j in range(1, trainings)
    }
    names |= nested
    i, n = shard or (0, 1)
    mine = {key: exp for j, (key, exp) in enumerate(sorted(names.items())) if j % n == i}
    resume = f"`selfrefine compare --stamp {stamp}` with the same --labels and --seeds" + (
        f" and --shard {i}/{n}" if shard else " (less a failed condition) collects the rest"
    )
    args = {
        key: [
            *(nested_args(by_name[key[0]], *key[1:]) if key in nested else by_name[key[0]].set_args(key[1], vary)),
            *_TARGETS,
        ]
        for key in mine
    }
    found = run_batch(mine, args, [paths.SUMMARY.as_posix()], jobs, resume, poll_seconds)
    if shard is not None:
        log.info(
            "compare: shard %d/%d ran %d of %d experiments; push them with `dvc exp push <git remote> %s`, then on "
            "one machine `dvc exp pull <git remote> <names>` of every shard and `selfrefine compare --stamp %s` with "
            "the same --labels and --seeds",
            i, n, len(mine), len(names), " ".join(mine.values()), stamp,
        )  # fmt: skip
        return {"shard": [i, n], "experiments": list(mine.values())}
    for model in models:
        rows = [{**r, "vary": _vary(r)} for r in kept[model] if r["labels"] not in by_name] + [
            score_row(key[0], key[1], r, vary)
            for key, node in sorted(found.items())
            if key not in nested
            for r in song_scores(node["rev"], model)
        ]
        write_csv(FOLDER / f"{model}.csv", rows, SCORE_COLUMNS)
        _keep_nested(model, judged, {key: found[key] for key in nested})
    quality_path = FOLDER / "labels.json"
    quality = json.loads(quality_path.read_text()) if quality_path.is_file() else {}
    for c in conditions:
        measured = _label_quality(found[(c.name, 0)]["rev"], c.table)
        quality.pop(c.name, None)
        if measured:
            quality[c.name] = measured
    write_json(quality_path, quality)
    batch_path = FOLDER / "batch.json"
    batch = _batches(json.loads(batch_path.read_text()) if batch_path.is_file() else {})
    batch["experiments"] = {
        key: exp for key, exp in batch["experiments"].items() if key.split("/", 1)[0] not in by_name
    } | {
        "/".join([key[0], f"seed{key[1]}", *(f"training{j}" for j in key[2:])]): exp
        for key, exp in sorted(names.items())
    }
    earlier = next((b for b in batch["batches"] if b["stamp"] == stamp), None)
    batch["batches"] = [b for b in batch["batches"] if b["stamp"] != stamp] + [
        {
            "stamp": stamp,
            "conditions": list(by_name),
            "experiments": len(names),
            **batch_times(found, queued, jobs, earlier),
        }
    ]
    write_json(batch_path, batch)
    return tabulate(params)


def world_of(params: Params) -> str:
    """Where the compared songs come from: the generated world (``generate.engine``) or the user's data root."""
    return params.generate.engine if Path(params.data.root) == paths.GENERATED else params.data.root


def nested_path(model: str, folder: Path = FOLDER) -> Path:
    """The kept scores of the further separator trainings of the judged table (:data:`NESTED_COLUMNS`)."""
    return folder / "separators" / f"{model}.csv"


NESTED_COLUMNS = ["labels", "seed", "training", *SCORE_COLUMNS[2:-1]]
"""One kept score of separator training ``training`` (1, 2, ...) within pipeline replicate ``seed``; training 0 of
each replicate is its row in ``<model>.csv``."""


def _keep_nested(model: str, judged: Condition | None, found: dict) -> None:
    """Keep the nested trainings' scores of this batch; a batch that reran the judged table without them drops
    the kept ones (their replicates' first trainings were replaced)."""
    path = nested_path(model)
    if found:
        rows = [
            {"labels": name, "seed": k, "training": j, **{c: r[c] for c in NESTED_COLUMNS[3:]}}
            for (name, k, j), node in sorted(found.items())
            for r in song_scores(node["rev"], model)
        ]
        write_csv(path, rows, NESTED_COLUMNS)
    elif judged and path.is_file():
        path.unlink()


def variance_split(rows: list[dict], nested: list[dict], table: str, source: Path) -> dict | None:
    """The nested split (:func:`~selfrefine.evaluation.intervals.nested_split`) of ``table``'s run-to-run spread:
    each replicate's first training from the kept scores ``rows``, the further ones from ``nested`` (read from
    ``source``); ``None`` when no replicate has a further training."""
    nested = [r for r in nested if r["labels"] == table]
    if not nested:
        return None
    first, seeds, songs = song_matrix(rows, table)
    runs = [first.mean(axis=1)]
    for j in sorted({int(r["training"]) for r in nested}):
        more, their_seeds, their_songs = song_matrix([r for r in nested if int(r["training"]) == j], table)
        if their_seeds != seeds or their_songs != songs:
            raise UserError(
                f"{source}: training {j} of {table} does not cover the replicates and songs of its kept runs; rerun "
                f"`selfrefine compare` with {table}"
            )
        runs.append(more.mean(axis=1))
    return nested_split(np.stack(runs, axis=1))


def _vary(row: dict) -> str:
    """What a kept score's run seed set (rows kept before ``vary`` was recorded varied the separators)."""
    return row.get("vary") or "separators"


def _batches(batch: dict) -> dict:
    """``batch.json`` as ``{"experiments": {...}, "batches": [...]}``, upgrading the one-batch format."""
    if "batches" in batch:
        return batch
    if "queued" not in batch:
        return {"experiments": {}, "batches": []}
    conditions = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in batch["experiments"]))
    single = {
        "stamp": datetime.fromisoformat(batch["queued"]).strftime("%Y%m%d-%H%M%S"),
        "conditions": conditions,
        "experiments": len(batch["experiments"]),
        **{k: batch[k] for k in ("queued", "last_finished", "minutes")},
    }
    return {"experiments": batch["experiments"], "batches": [single]}


def tabulate(params: Params, folder: Path = FOLDER) -> dict:
    """Intervals from the kept per-song scores; writes compare.json / .md, the plot, docs/results.md's results
    section and the README's headline."""
    table: dict[str, Any] = {
        "models": {},
        "level": 0.95,
        "method": METHOD,
        "primary": list(params.compare.primary),
        "world": world_of(params),
    }
    for model in params.separate.models:
        path = folder / f"{model}.csv"
        if not path.is_file():
            raise UserError(f"{path}: no kept scores; run `selfrefine compare` first")
        rows = read_csv(path)
        labels = list(dict.fromkeys(r["labels"] for r in rows))
        if "noisy" not in labels:
            raise UserError(f"{path}: no noisy runs to set the other conditions against; run compare with noisy")
        varies = {_vary(r) for r in rows}
        if len(varies) != 1:
            raise UserError(f"{path}: conditions run with different vary ({', '.join(sorted(varies))}); rerun compare")
        matrices = {t: song_matrix(rows, t) for t in labels}
        shapes = {t: (m[1], m[2]) for t, m in matrices.items()}
        if len({(tuple(a), tuple(b)) for a, b in shapes.values()}) != 1:
            raise UserError(f"{path}: the label tables were not run with the same seeds and songs; rerun compare")
        injected = [t for t in labels if _injected(t)]
        refined = [t for t in labels if t not in ("noisy", "clean", *injected)]
        scores = {t: m[0] for t, m in matrices.items()}
        result = compare_conditions(scores, refined)
        seeds, songs = next(iter(shapes.values()))
        per_source = {
            t: {
                c: float(np.mean([float(r["global_sdr"]) for r in rows if r["labels"] == t and r["source"] == c]))
                for c in CLASSES
            }
            for t in labels
        }
        bsseval = {t: _bsseval(rows, t) for t in labels}
        judged = params.separate.labels if params.separate.labels in refined else (refined[-1] if refined else None)
        entry = {t: result[t] for t in labels}
        if judged:
            entry["refined"] = judged
            entry["refined_minus_noisy"] = result["differences"][judged]["minus_noisy"]
            if "clean" in labels:
                entry["refined_minus_clean"] = result["differences"][judged]["minus_clean"]
                entry["gap_closed"] = result["differences"][judged]["gap_closed"]
        if injected and "clean" in labels:
            entry["against_clean"] = against_clean(rows, ["noisy", *injected])
        entry.update(
            {
                "contrasts": contrasts(rows, labels, params.compare.primary, injected, judged),
                "differences": result["differences"],
                "clean_minus_noisy": result.get("clean_minus_noisy"),
                "per_source": per_source,
                "bsseval_sdr": bsseval,
                "runs": {t: [round(float(v), 4) for v in m[0].mean(axis=1)] for t, m in matrices.items()},
                "seeds": seeds,
                "replicates": len(seeds),
                "vary": varies.pop(),
                "songs": len(songs),
                "coverage_checked": len(seeds) > 1,
            }
        )
        if judged and len(seeds) > 1:
            entry["variance"] = crossed(scores[judged] - scores["noisy"]).components
            entry["run_spread"] = {t: run_spread(scores[t]) for t in labels}
            if "clean" in entry["run_spread"]:  # clean's runs vary separator training alone
                ratio = spread_ratio(entry["run_spread"][judged], entry["run_spread"]["clean"])
                if ratio:
                    entry["spread_over_clean"] = {"table": judged, **ratio}
            path = nested_path(model, folder)
            split = variance_split(rows, read_csv(path), judged, path) if path.is_file() else None
            if split:
                entry["variance_split"] = {"table": judged, **split}
        table["models"][model] = entry
    batch, quality = folder / "batch.json", folder / "labels.json"
    table["batch"] = _batches(json.loads(batch.read_text())) if batch.is_file() else None
    kept = json.loads(quality.read_text()) if quality.is_file() else {}
    # a plain table (no overrides) was refined with the committed params: the workspace's refine metrics are its
    plain = {t: _label_quality(None, t) for m in table["models"].values() for t in m["per_source"] if "@" not in t}
    table["label_quality"] = {t: q for t, q in plain.items() if q} | kept
    table["aliases"] = dict(params.compare.aliases)
    table["rounds"] = round_rows(list(params.refine.rounds))
    write_json(paths.COMPARE_JSON, table)
    write_text(paths.COMPARE_MD, markdown(table))
    update_section(paths.RESULTS_DOC, "results", results_section(table))
    others = other_worlds(table["world"])
    if others:
        update_section(paths.RESULTS_DOC, "worlds", worlds_section({table["world"]: table, **others}))
    update_section(paths.README, "headline", headline(table, others))
    compare_plot(paths.COMPARE_PLOT, table)
    write_csv(paths.COMPARE_CSV, interval_rows(table), ["model", "condition", "mean", "ci_low", "ci_high", "runs"])
    log.info(
        "compare: wrote %s, %s, %s, %s's results and %s's headline",
        paths.COMPARE_JSON, paths.COMPARE_MD, paths.COMPARE_PLOT, paths.RESULTS_DOC, paths.README,
    )  # fmt: skip
    return table


def other_worlds(world: str, folder: Path = WORLDS) -> dict[str, dict]:
    """Per other generated world kept in ``folder`` (``<engine>/compare.json``), its comparison table."""
    tables = {}
    for path in sorted(folder.glob("*/compare.json")):
        table = json.loads(path.read_text())
        if table.get("world") != path.parent.name:
            raise UserError(f"{path}: holds the world {table.get('world')!r}, not {path.parent.name!r}; move it")
        if path.parent.name != world:
            tables[path.parent.name] = table
    return tables


def contrasts(
    rows: list[dict], labels: list[str], primary: list[str], injected: list[str], refined: str | None = None
) -> list[dict]:
    """The differences a comparison reports, globally and per source, primary or exploratory.

    The declared contrasts (``compare.primary``, ``A - B``) among ``labels`` come first, each with its own 95 %
    interval. The exploratory family: every other table against noisy and against clean (``clean - noisy``
    included), and ``refined`` against the selection control ``selected``; the injected-noise conditions are left
    to :func:`against_clean`. Each exploratory contrast carries a Holm-adjusted p-value over that family.

    Returns:
        ``[{"contrast": "A - B", "primary": bool, "global": {...}, "<source>": {...}, "p_holm": float}]``.
    """
    methods = [t for t in labels if t not in injected]
    declared = [tuple(c.split(" - ")) for c in primary]
    declared = [(a, b) for a, b in declared if a in methods and b in methods]
    candidates = [(t, ref) for ref in ("noisy", "clean") if ref in methods for t in methods if t not in ("noisy", ref)]
    if refined in methods and "selected" in methods and refined != "selected":
        candidates.append((refined, "selected"))
    others = [pair for pair in dict.fromkeys(candidates) if pair not in declared and pair[::-1] not in declared]
    out = []
    for a, b in [*declared, *others]:
        item: dict[str, Any] = {"contrast": f"{a} - {b}", "primary": (a, b) in declared}
        for part, sources in [("global", CLASSES), *((c, (c,)) for c in CLASSES)]:
            item[part] = difference(song_matrix(rows, a, sources=sources)[0], song_matrix(rows, b, sources=sources)[0])
        out.append(item)
    exploratory = [c for c in out if not c["primary"]]
    for c, p in zip(exploratory, holm([c["global"]["p"] for c in exploratory]), strict=True):
        c["p_holm"] = p
    return out


def _injected(condition: str) -> bool:
    """Whether a condition is noisy labels with other injected noise (only ``noise.*`` overrides), not a method
    (a refined table, or noisy labels with a method's overrides such as a noise-robust loss)."""
    table, *pairs = condition.split("@")
    return table == "noisy" and bool(pairs) and all(p.startswith("noise.") for p in pairs)


def against_clean(rows: list[dict], conditions: list[str]) -> dict:
    """Noise conditions (``noisy`` with injected-noise overrides, e.g. only false negatives) set against clean.

    Per condition, global SDR and each source's SDR minus clean's, with 95 % intervals from the crossed analysis
    (:mod:`selfrefine.evaluation.intervals`); and each pair of conditions against each other (``a − b``): the
    false-negative / false-positive asymmetry is the pair of a merge-only and a silent-only condition at the same
    rate.

    Returns:
        ``{"conditions": {condition: {"global" | source: {"mean", "ci_low", "ci_high", "p"}}},
        "pairs": {"a − b": {...same...}}}``.
    """
    out: dict = {"conditions": {c: {} for c in conditions}, "pairs": {}}
    pairs = [(a, b) for i, a in enumerate(conditions) for b in conditions[i + 1 :]]
    for part, sources in [("global", CLASSES), *((c, (c,)) for c in CLASSES)]:
        scores = {t: song_matrix(rows, t, sources=sources)[0] for t in ["clean", *conditions]}
        for t in conditions:
            out["conditions"][t][part] = difference(scores[t], scores["clean"])
        for a, b in pairs:
            out["pairs"].setdefault(f"{a} − {b}", {})[part] = difference(scores[a], scores[b])
    return out


def _bsseval(rows: list[dict], labels: str) -> float | None:
    """BSSEval v4 SDR of a table: per run, the median over songs of each source, averaged over sources; mean over runs."""
    mine = [r for r in rows if r["labels"] == labels and r["sdr"] not in ("", "nan")]
    if not mine:
        return None
    runs = []
    for seed in sorted({r["seed"] for r in mine}):
        by_source = [[float(r["sdr"]) for r in mine if r["seed"] == seed and r["source"] == c] for c in CLASSES]
        runs.append(np.mean([np.nanmedian(v) for v in by_source]))
    return float(np.mean(runs))
