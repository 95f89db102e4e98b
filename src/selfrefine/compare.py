"""``selfrefine compare``: the same separators trained on noisy, refined and clean labels, side by side.

Queues one DVC experiment per label table (``dvc exp run --queue -S separate.labels=<name>``), runs the
queue (``dvc queue start``: each experiment restores every stage it shares with the committed run
from DVC's run cache, so only the separators and the evaluation rerun), reads the experiments'
separation metrics back with ``dvc exp show --json``, and writes ``metrics/compare.json``,
``metrics/compare.md``, ``plots/compare.png`` and the README's results section.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from selfrefine import CLASSES, paths
from selfrefine.config import load_params
from selfrefine.errors import UserError
from selfrefine.outputs import write_json, write_text

log = logging.getLogger(__name__)


class DvcError(UserError):
    """A dvc command failed; the message is its last line of output."""


def _dvc(*args: str) -> str:
    """Run a dvc command, return its output; a failure is a :class:`DvcError`.

    ``dvc queue start`` forks a worker that outlives the command; its output goes to files, not to
    our pipes, which would otherwise stay open until the worker exits.
    """
    if args[:2] == ("queue", "start"):
        proc = subprocess.run(
            ["dvc", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if proc.returncode != 0:
            raise DvcError(f"dvc {' '.join(args)} failed with exit code {proc.returncode}")
        return ""
    proc = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DvcError(f"dvc {' '.join(args)} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc.stdout


def _find_experiment(node: Any, name: str) -> dict | None:
    """The ``dvc exp show --json`` record of experiment ``name`` (searched recursively)."""
    if isinstance(node, dict):
        if node.get("name") == name and isinstance(node.get("data"), dict):
            return node["data"]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_experiment(child, name)
        if found is not None:
            return found
    return None


def _separation_metrics(data: dict, model: str) -> dict:
    path = paths.metrics("separation", model).as_posix()
    metrics = data.get("metrics", {}).get(path, {})
    if "data" not in metrics:
        raise DvcError(f"the experiment wrote no {path}; see `dvc queue logs`")
    return metrics["data"]


def gap_closed(noisy: float, refined: float, clean: float) -> float | None:
    """Share of the noisy->clean SDR gap that refinement closes (None when there is no gap)."""
    gap = clean - noisy
    return (refined - noisy) / gap if gap > 1e-9 else None


def comparison_table(results: dict[str, dict[str, dict]]) -> dict:
    """Per model and label table: global SDR per source and its mean, BSSEval v4 median SDR mean, gap closed.

    Args:
        results: ``{labels: {model: metrics/separation/<model>.json content}}``.
    """
    table: dict[str, Any] = {"global_sdr": {}, "sdr": {}, "gap_closed": {}}
    models = next(iter(results.values())).keys() if results else []
    for model in models:
        table["global_sdr"][model] = {
            labels: {
                **{c: r[model]["global_sdr"]["mean"][c] for c in CLASSES},
                "mean": r[model]["global_sdr"]["mean"]["mean_over_sources"],
            }
            for labels, r in results.items()
        }
        table["sdr"][model] = {
            labels: r[model]["sdr"]["median"]["mean_over_sources"] if r[model].get("sdr") else None
            for labels, r in results.items()
        }
        g = table["global_sdr"][model]
        if {"noisy", "clean"} <= set(g):
            table["gap_closed"][model] = {
                labels: gap_closed(g["noisy"]["mean"], g[labels]["mean"], g["clean"]["mean"])
                for labels in g
                if labels not in ("noisy", "clean")
            }
    return table


def markdown(table: dict) -> str:
    """The comparison as a markdown table (global SDR in dB, mean over test songs)."""
    lines = [
        "| model | labels | " + " | ".join(CLASSES) + " | mean | BSSEval v4 SDR | gap closed |",
        "|---" * (len(CLASSES) + 5) + "|",
    ]
    for model, by_labels in table["global_sdr"].items():
        for labels, row in by_labels.items():
            closed = table["gap_closed"].get(model, {}).get(labels)
            bsseval = table["sdr"][model][labels]
            lines.append(
                f"| {model} | {labels} | "
                + " | ".join(f"{row[c]:.2f}" for c in CLASSES)
                + f" | **{row['mean']:.2f}** | {'' if bsseval is None else f'{bsseval:.2f}'} | "
                + ("" if closed is None else f"{100 * closed:.0f} %")
                + " |"
            )
    return "\n".join(lines) + "\n"


def method_summary(rounds: list[str]) -> str:
    """Classifier and refinement headline numbers of the committed run's ``rounds``, as markdown (from metrics/)."""
    lines = [
        "| round | classifier trained on | clean-test exact match | macro F1 | stems whose label set is right: trained on → refined |",
        "|---|---|---|---|---|",
    ]
    for name in rounds:
        classifier, refinement = paths.metrics("classifier", name), paths.metrics("refine", name)
        if not (classifier.is_file() and refinement.is_file()):
            continue
        c, r = json.loads(classifier.read_text()), json.loads(refinement.read_text())
        if "skipped" in c or "label_accuracy_refined" not in r:
            continue
        test = c["test_clean_mixtures"]
        lines.append(
            f"| {name} | {c['trained_on']} | {100 * test['exact_match']:.1f} % | {test['macro_f1']:.3f} | "
            f"{100 * r['label_accuracy_input']:.1f} % → {100 * r['label_accuracy_refined']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, text: str) -> None:
    """Replace what stands between the README's results markers with ``text``."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    content = readme.read_text()
    if start not in content or end not in content:
        raise UserError(f"{readme}: no '{start}' ... '{end}' markers to write the results between")
    head, rest = content.split(start, 1)
    write_text(readme, head + start + "\n" + text + rest[rest.index(end) :])


def results_section(table: dict, rounds: list[str]) -> str:
    """The README's results section: generated from the comparison and the committed metrics."""
    parts = [
        "Produced by `selfrefine compare` (global SDR in dB, mean over the clean test songs; BSSEval v4 SDR, as",
        "museval computes it: median over songs of the per-song median over 1 s windows, averaged over sources).",
        "",
        markdown(table),
    ]
    for model, closed in table["gap_closed"].items():
        g = table["global_sdr"][model]
        gap = g["clean"]["mean"] - g["noisy"]["mean"]
        refined = ", ".join(f"{name} {100 * v:.0f} %" for name, v in closed.items() if v is not None)
        parts.append(f"- **{model}**: noisy → clean gap {gap:.2f} dB; share of it closed: {refined}.")
    batch = table["batch"]
    parts += [
        "",
        f"The experiments were queued at {batch['queued']} and the last finished at {batch['last_finished']}",
        f"({batch['minutes']} min for the batch). Classifier and label quality of the committed run",
        "(`metrics/classifier/`, `metrics/refine/`; exact match on clean test mixtures at threshold 0.5):",
        "",
        method_summary(rounds),
    ]
    return "\n".join(parts)


def _queue_status(names: dict[str, str]) -> dict[str, str]:
    """Status word (Queued, Running, Success, Failed, ...) of each of our experiments in ``dvc queue status``."""
    lines = _dvc("queue", "status").splitlines()
    return {name: line.split()[-1] for name, exp in names.items() for line in lines if exp in line.split()}


def _results(
    names: dict[str, str], models: list[str], status: dict[str, str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """Separation metrics (and finish times, where DVC records them) of our finished experiments (``dvc exp show``).

    An experiment still queued or running is never read: ``dvc exp show`` already lists it, with the metrics
    files its checkout of the baseline commit holds (the committed run's), not its own (``status``: see
    :func:`_queue_status`). All commits are searched: a comparison resumed after new commits still finds
    its experiments.
    """
    busy = {name for name, word in status.items() if word in ("Queued", "Running")}
    shown = json.loads(_dvc("exp", "show", "--json", "--all-commits"))
    results, finished = {}, {}
    for name, exp in names.items():
        if name in busy:
            continue
        data = _find_experiment(shown, exp)
        if data is not None and all(
            paths.metrics("separation", m).as_posix() in data.get("metrics", {}) for m in models
        ):
            results[name] = {model: _separation_metrics(data, model) for model in models}
            if data.get("timestamp"):
                finished[name] = data["timestamp"]
    return results, finished


def run_comparison(
    labels: list[str],
    stamp: str | None = None,
    out_dir: Path = Path("metrics"),
    plot: Path = Path("plots/compare.png"),
    poll_seconds: float = 15.0,
) -> dict:
    """Queue, run and tabulate one experiment per label table (see module docstring).

    Args:
        labels: label tables to compare.
        stamp: names the batch (``compare-<labels>-<stamp>``); reusing the stamp of an interrupted
            comparison queues only the experiments that have not finished. Default: now.
        out_dir: where compare.json / compare.md go.
        plot: the bar chart.
        poll_seconds: how often the queue is checked.
    """
    params = load_params()
    models = params.separate.models
    unknown = [name for name in labels if name not in params.label_tables()]
    if unknown:
        raise UserError(f"unknown label table '{unknown[0]}'; use any of {', '.join(params.label_tables())}")
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    try:
        queued = datetime.strptime(stamp, "%Y%m%d-%H%M%S")
    except ValueError:
        raise UserError(
            f"--stamp {stamp!r}: expected YYYYmmdd-HHMMSS, as in an earlier batch's experiment names"
        ) from None
    names = {name: f"compare-{name}-{stamp}" for name in labels}
    began = time.perf_counter()
    status = _queue_status(names)
    results, finished = _results(names, models, status)
    pending = {name: exp for name, exp in names.items() if name not in results}
    if pending:
        for name, exp in pending.items():
            if status.get(name) not in ("Queued", "Running"):
                _dvc("exp", "run", "--queue", "-S", f"separate.labels={name}", "--name", exp)
                log.info("compare: queued %s", exp)
        _dvc("queue", "start", "-j", "1")
        log.info("compare: running %d experiments in the DVC queue (`dvc queue status` shows them)", len(pending))
    while len(results) < len(names):
        time.sleep(poll_seconds)
        status = _queue_status(names)
        failed = [names[n] for n, word in status.items() if word == "Failed"]
        if failed:
            raise DvcError(f"experiment {failed[0]} failed; see `dvc queue logs {failed[0]}`")
        if any(word == "Queued" for word in status.values()) and "Running" not in status.values():
            _dvc("queue", "start", "-j", "1")  # the worker can exit with work left in the queue
        results, finished = _results(names, models, status)
    table = comparison_table({name: results[name] for name in labels})
    table["experiments"] = names
    last = max(map(datetime.fromisoformat, finished.values()), default=datetime.now())
    table["batch"] = {
        "queued": queued.isoformat(),
        "last_finished": last.isoformat(),
        "minutes": round((last - queued).total_seconds() / 60, 1),
    }
    table["seconds_this_call"] = round(time.perf_counter() - began, 1)
    write_json(out_dir / "compare.json", table)
    write_text(out_dir / "compare.md", markdown(table))
    update_readme(Path("README.md"), results_section(table, list(params.refine.rounds)))
    compare_bars(plot, table["global_sdr"])
    log.info(
        "compare: wrote %s, %s and the README's results (batch: %.1f min)",
        out_dir / "compare.json",
        plot,
        table["batch"]["minutes"],
    )
    return table


def compare_bars(path: Path, table: dict[str, dict[str, dict[str, float]]]) -> None:
    """SDR per source per label table, one panel per model.

    Args:
        path: PNG to write.
        table: ``{model: {labels: {source or "mean": dB}}}``.
    """
    import numpy as np

    from selfrefine.plots import plt, save_figure

    models = sorted(table)
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        labels = list(table[model])
        keys = [*CLASSES, "mean"]
        width = 0.8 / len(labels)
        for i, name in enumerate(labels):
            ax.bar(np.arange(len(keys)) + i * width, [table[model][name][k] for k in keys], width, label=name)
        ax.set_xticks(np.arange(len(keys)) + width * (len(labels) - 1) / 2, keys)
        ax.set_title(model)
        ax.set_ylabel("global SDR (dB)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(labels), frameon=False)
    save_figure(fig, path)
