"""What a comparison's table says, in the forms people read: markdown tables, findings in words, the results
section of ``docs/results.md``, the README's headline, and the figure and CSV of the intervals.

Part of the ``compare`` face (:mod:`selfrefine.experiments.compare` computes the table; this module only renders
it): every function takes the table :func:`~selfrefine.experiments.compare.tabulate` builds, plus the committed
run's metrics where it says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfrefine import CLASSES, paths
from selfrefine.experiments.report import batch_text, ci_text, display, pct_text

WORLD_NAMES = {"synth": "synthesised instruments", "sampled": "instruments sampled from a General MIDI soundfont"}
"""What each generated world (``generate.engine``) plays its songs on."""


def _names(table: dict) -> dict[str, str]:
    return table.get("aliases") or {}


def markdown(table: dict) -> str:
    """The comparison as a markdown table: global SDR with 95 % intervals, per source, and against noisy."""
    lines = [
        "| model | labels | global SDR [95 % CI] | "
        + " | ".join(CLASSES)
        + " | BSSEval v4 | − noisy [95 % CI] | gap closed [95 % CI] | labels right |",
        "|---" * (len(CLASSES) + 7) + "|",
    ]
    quality = table.get("label_quality") or {}
    for model, entry in table["models"].items():
        for labels in entry["per_source"]:
            diff = entry["differences"].get(labels, {})
            bss = entry["bsseval_sdr"][labels]
            lines.append(
                f"| {model} | {display(labels, _names(table))} | **{ci_text(entry[labels])}** | "
                + " | ".join(f"{entry['per_source'][labels][c]:.2f}" for c in CLASSES)
                + f" | {'' if bss is None else f'{bss:.2f}'} | "
                + (ci_text(diff["minus_noisy"]) if "minus_noisy" in diff else "")
                + " | "
                + (pct_text(diff["gap_closed"]) if "gap_closed" in diff else "")
                + " | "
                + (f"{100 * quality[labels]['label_accuracy']:.1f} %" if labels in quality else "")
                + " |"
            )
    aliases = {a: c for a, c in _names(table).items() if any(c in e["per_source"] for e in table["models"].values())}
    if aliases:
        lines += ["", "Aliases (`compare.aliases`):", "", *(f"- {a}: `{c}`" for a, c in aliases.items())]
    return "\n".join(lines) + "\n"


def contrast_markdown(table: dict) -> str:
    """Every contrast, globally and per source, with its 95 % interval: the primary ones first, then the
    exploratory ones with their Holm-adjusted p (empty when no table holds contrasts)."""
    lines = []
    names = _names(table)
    for model, entry in table["models"].items():
        for c in entry.get("contrasts", []):
            if not lines:
                lines = [
                    "| model | contrast (dB) | kind | global [95 % CI] | " + " | ".join(CLASSES) + " |",
                    "|---" * (len(CLASSES) + 4) + "|",
                ]
            name = " − ".join(display(t, names) for t in c["contrast"].split(" - "))
            kind = "primary" if c["primary"] else f"exploratory (Holm p {_p(c['p_holm'])})"
            cells = [f"**{ci_text(c['global'])}**", *(ci_text(c[source]) for source in CLASSES)]
            lines.append(f"| {model} | {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if lines else ""


def noise_markdown(table: dict) -> str:
    """The injected-noise conditions against clean, per source with intervals (empty without such conditions)."""
    lines = []
    for model, entry in table["models"].items():
        against = entry.get("against_clean")
        if not against:
            continue
        if not lines:
            lines = [
                "| model | labels − clean | global SDR [95 % CI] | " + " | ".join(CLASSES) + " |",
                "|---" * (len(CLASSES) + 3) + "|",
            ]
        for name, parts in [*against["conditions"].items(), *against["pairs"].items()]:
            cells = [ci_text(parts["global"])] + [ci_text(parts[c]) for c in CLASSES]
            label = " − ".join(display(n, _names(table)) for n in [*name.split(" − "), "clean"][:2])
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if lines else ""


def _side(value: dict) -> str:
    """Where an interval lies against 0, in words (what was measured, not a claim about coverage)."""
    if value["ci_low"] > 0:
        return "interval above 0"
    return "interval below 0" if value["ci_high"] < 0 else "interval includes 0"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def findings(table: dict) -> list[str]:
    """What the intervals say, in words: per model a line, one nested line per primary contrast, then the
    exploratory ones (with Holm-adjusted p) and the selection control.

    Only a primary interval that excludes 0 is stated as an effect ("better" / "worse"); anything else reads
    "not established"; exploratory contrasts state where their interval lies and their adjusted p, no more.
    """
    out = []
    names = _names(table)
    for model, entry in table["models"].items():
        gap = entry.get("clean_minus_noisy")
        runs = f"{entry['replicates']} runs (vary: {entry['vary']}) x {entry['songs']} songs"
        head = f"**{model}** ({runs})"
        out.append(head + (f": clean − noisy = {ci_text(gap, unit=' dB')} ({_side(gap)})." if gap else ":"))
        if not entry.get("coverage_checked", False):
            out.append("  - One run: the intervals span songs only; their coverage is not checked.")
        for c in entry.get("contrasts", []):
            a, b = (display(t, names) for t in c["contrast"].split(" - "))
            d = c["global"]
            if c["primary"]:
                verdict = (
                    f"{a} better than {b}"
                    if d["ci_low"] > 0
                    else f"{a} worse than {b}"
                    if d["ci_high"] < 0
                    else f"a difference between {a} and {b} is not established"
                )
                out.append(f"  - primary: {a} − {b} = {ci_text(d, unit=' dB')}: {verdict}.")
        if entry.get("gap_closed"):
            out.append(f"  - share of the noisy → clean gap that {display(entry['refined'], names)} closes (Fieller): "
                       f"{pct_text(entry['gap_closed'])}.")  # fmt: skip
        for c in entry.get("contrasts", []):
            if not c["primary"]:
                a, b = (display(t, names) for t in c["contrast"].split(" - "))
                d = c["global"]
                out.append(
                    f"  - exploratory: {a} − {b} = {ci_text(d, unit=' dB')} ({_side(d)}; Holm p = {_p(c['p_holm'])})."
                )
        control = selection_text(entry, names)
        if control:
            out.append(f"  - {control}")
    return out


def selection_text(entry: dict, names: dict[str, str]) -> str:
    """What the selection control says about the refined table's standing against clean labels (empty without it).

    ``selected`` holds clean labels on only the stems the refined table's pools keep. Where the refined table is
    better than clean (its primary interval above 0) and ``selected`` too is above clean while refined - selected
    includes 0, the gain over clean is data selection; where refined - selected is above 0, it is more than that.
    """
    refined = entry.get("refined")
    versus = _difference(entry, refined, "selected")
    against = _difference(entry, "selected", "clean")
    primary = entry.get("refined_minus_clean")
    if not (refined and versus and against and primary):
        return ""
    r = display(refined, names)
    text = (
        f"selection control (clean labels on only the stems {r}'s pools keep): {r} − selected = "
        f"{ci_text(versus['global'], unit=' dB')} ({_side(versus['global'])}), selected − clean = "
        f"{ci_text(against['global'], unit=' dB')} ({_side(against['global'])})"
    )
    text += _selection_verdict(primary, versus["global"], against["global"], r, "") or "."
    gains = _difference(entry, refined, "clean") or {}
    for source, gain in gains.items():
        if source == "global" or not isinstance(gain, dict) or gain["ci_low"] <= 0 <= gain["ci_high"]:
            continue
        mine, theirs = versus.get(source), against.get(source)
        if mine and theirs:
            text += (
                f" Per source (exploratory), {source}: {r} − clean = {ci_text(gain, unit=' dB')}, {r} − selected = "
                f"{ci_text(mine, unit=' dB')}, selected − clean = {ci_text(theirs, unit=' dB')}"
            )
            text += _selection_verdict(gain, mine, theirs, r, f" on {source}") or "."
    return text


def _difference(entry: dict, a: str | None, b: str) -> dict | None:
    """Contrast ``a - b`` (global and per source) from the entry's contrasts, negating ``b - a`` if that is kept."""
    by_name = {c["contrast"]: c for c in entry.get("contrasts", [])}
    if f"{a} - {b}" in by_name:
        return by_name[f"{a} - {b}"]
    other = by_name.get(f"{b} - {a}")
    if other is None:
        return None
    return {k: _negated(v) if isinstance(v, dict) and "mean" in v else v for k, v in other.items()}


def _selection_verdict(gain: dict, versus: dict, against: dict, refined: str, where: str) -> str:
    """What the control says of a gain over clean labels (``gain``: refined - clean); empty where it says nothing:
    no gain, or neither interval decides."""
    if gain["ci_low"] > 0 and against["ci_low"] > 0 and versus["ci_low"] <= 0 <= versus["ci_high"]:
        return f": {refined}'s gain over clean labels{where} is data selection (the control gains as much)."
    if gain["ci_low"] > 0 and versus["ci_low"] > 0:
        return f": {refined} beats the control{where} too, so its gain over clean is more than data selection."
    if gain["ci_high"] < 0 and against["ci_high"] < 0 and versus["ci_low"] <= 0 <= versus["ci_high"]:
        return f": {refined}'s loss against clean labels{where} is data selection (the control loses as much)."
    return ""


def _negated(value: dict | None) -> dict | None:
    if value is None:
        return None
    flip = {"mean": -value["mean"], "ci_low": -value["ci_high"], "ci_high": -value["ci_low"]}
    return {**value, **{k: v + 0.0 for k, v in flip.items()}}  # + 0.0: no "-0.00"


def results_section(table: dict) -> str:
    """docs/results.md's results section: generated from the comparison and the committed metrics."""
    parts = [
        "Produced by `selfrefine compare`; `selfrefine compare --tabulate` regenerates it from the kept per-song",
        "scores (`metrics/compare/*.csv`). Global SDR in dB: mean over runs and clean test songs of the per-song",
        f"mean over sources. Intervals: nominal 95 %, {table['method']} (`selfrefine.evaluation.intervals`): every",
        "run scores the same songs, so runs and songs are crossed random effects; the method's coverage is checked",
        "by simulation with the variance components measured here (`benchmarks/results/coverage.json`). The",
        f"contrasts declared before the runs (`compare.primary`: {', '.join(table.get('primary', []))}) are",
        "primary; every other difference is exploratory. Per source: mean over runs and songs. BSSEval v4:",
        "museval's SDR, median over songs per source, averaged over sources, mean over runs.",
        "",
        markdown(table),
        *(line if line.startswith("  ") else f"- {line}" for line in findings(table)),
    ]
    contrast = contrast_markdown(table)
    if contrast:
        parts += ["", "Every contrast, globally and per source (runs and songs paired):", "", contrast]
    variance = {m: e["variance"] for m, e in table["models"].items() if "variance" in e}
    if variance:
        parts += [
            "",
            "Variance components of refined − noisy (dB², method of moments): "
            + "; ".join(
                f"{m} ({table['models'][m]['vary']}): run {v['run']:.4f}, song {v['song']:.4f}, residual "
                f"{v['residual']:.4f}"
                for m, v in variance.items()
            )
            + ". With `vary: pipeline` the run part holds the refinement's and the separators' run-to-run spread"
            " together; with `vary: separators`, the separators' alone.",
        ]
    split = split_text(table)
    if split:
        parts += ["", split]
    noise = noise_markdown(table)
    if noise:
        parts += [
            "",
            "Label noise of one kind, injected into the true labels at the same rate (`noise.rate`), against clean",
            "labels (dB, same runs and songs; a merge-only table holds only false negatives: a stem named s also",
            "holds t and is labelled {s}; a silent-only table only false positives: a silent stem labelled {s}):",
            "",
            noise,
        ]
    batch = table.get("batch")
    if batch:
        parts += ["", "Batches (wall time from queueing to the last experiment's end):", ""]
        names = _names(table)
        parts += [
            f"- {', '.join(display(c, names) for c in b['conditions'])}: {batch_text(b)}" for b in batch["batches"]
        ]
    if table.get("label_quality"):
        parts += [
            "",
            "*Labels right*: share of the training stems whose refined label set equals the truth (the generator",
            "knows it; analysis only, no choice is made on it).",
        ]
    parts += [
        "",
        "Classifier and label quality of the committed run (`metrics/classifier/`, `metrics/refine/`; exact match",
        "on clean test mixtures at threshold 0.5):",
        "",
        method_summary(table.get("rounds", [])),
    ]
    return "\n".join(parts)


def split_text(table: dict) -> str:
    """How much runs differ per condition, and where the judged table's spread comes from (a nested design)."""
    names = _names(table)
    spreads = {m: e["run_spread"] for m, e in table["models"].items() if "run_spread" in e}
    lines = []
    if spreads:
        lines += [
            "Run-to-run spread: the variance of one run's mean global SDR (dB², 95 % chi-square interval; the songs",
            "are the same in every run, so only the runs vary). With `vary: pipeline` a run redraws what its table",
            "depends on: clean labels do not depend on the seed, so clean's spread is separator training alone.",
            "",
            "| separator | " + " | ".join(display(t, names) for t in next(iter(spreads.values()))) + " |",
            "|---|" + "---|" * len(next(iter(spreads.values()))),
        ]
        for model, spread in spreads.items():
            cells = [f"{v['variance']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]" for v in spread.values()]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    ratios = {m: e["spread_over_clean"] for m, e in table["models"].items() if "spread_over_clean" in e}
    if ratios:
        judged = display(next(iter(ratios.values()))["table"], names)
        parts = [f"{m} {pct_text({**r, 'mean': r['ratio']})}" for m, r in ratios.items()]
        lines += [
            "",
            f"What the refinement adds to separator training's spread: {judged}'s run-to-run variance as a share of "
            f"clean's (95 % F interval, the two tables' runs taken as independent): {', '.join(parts)}. An "
            "interval that includes 100 % says the refinement's own run-to-run spread (noise draw, classifiers) "
            "is not established beside separator training's.",
        ]
    splits = {m: e["variance_split"] for m, e in table["models"].items() if "variance_split" in e}
    if not splits:
        return "\n".join(lines)
    first = next(iter(splits.values()))
    lines += [
        "",
        f"Where {first['table']}'s run-to-run spread comes from: {first['replicates']} pipeline replicates x "
        f"{first['separator_runs']} separator trainings each (the further ones on `separate.seed` = seed + 1000;"
        f" `compare.separator_runs`), nested; {first['method']}. Variances of one run's mean global SDR (dB²):",
        "",
    ]
    for model, v in splits.items():
        low, high = v["separators_ci"]
        lines.append(
            f"- {model}: refinement (noise draw and classifiers) {v['refinement']:.4f}, separator training "
            f"{v['separators']:.4f} [{low:.4f}, {high:.4f}]; the refinement's share "
            f"{pct_text(v['share_refinement'])}."
        )
    return "\n".join(lines)


def _label_line(rounds: list[dict]) -> str:
    """How right the committed run's label tables are, round by round (:func:`round_rows`; empty when the truth is
    unknown)."""
    if not rounds:
        return ""
    steps = [f"noisy {100 * rounds[0]['label_accuracy_noisy']:.1f} %"] + [
        ("the round trained on clean labels" if r["trained_on"] == "clean" else f"round {r['round']}")
        + f" {100 * r['label_accuracy_refined']:.1f} %"
        for r in rounds
    ]
    return (
        "Stems whose label set is right (the generator knows the truth; `metrics/refine/`): " + ", ".join(steps) + ".\n"
    )


def _world(table: dict) -> str:
    """Where the compared songs come from, as the headline names it."""
    world = table.get("world")
    if world in WORLD_NAMES:
        return f"of the generated world `{world}` ({WORLD_NAMES[world]}; `generate.engine`)"
    return f"of `{world}`" if world else ""


def headline(table: dict, others: dict[str, dict] | None = None) -> str:
    """The README's results headline: per separator, noisy / refined / clean global SDR, the primary contrasts
    and the gap closed."""
    lines = [
        "| separator | noisy labels | refined labels | clean labels | refined − noisy | refined − clean | gap closed "
        "| runs x songs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, entry in table["models"].items():
        refined = entry.get("refined")
        cells = [
            model,
            ci_text(entry["noisy"]),
            f"{ci_text(entry[refined])} ({display(refined, _names(table))})" if refined else "not run",
            ci_text(entry["clean"]) if "clean" in entry else "not run",
            ci_text(entry["refined_minus_noisy"]) if refined else "",
            ci_text(entry["refined_minus_clean"]) if "refined_minus_clean" in entry else "",
            pct_text(entry["gap_closed"]) if "gap_closed" in entry else "",
            f"{entry['replicates']} x {entry['songs']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    varies = {e["vary"] for e in table["models"].values()}
    what = (
        "a run replicates the whole method (noise draw, classifiers, separators) on the same songs"
        if varies == {"pipeline"}
        else "a run is a separator seed; the noise draw and the classifiers are one realisation"
    )
    statements, model = [], ""
    for line in findings(table):
        if line.startswith("**"):
            model = line.split("**")[1]
        elif line.startswith("  - primary: "):
            statements.append(f"- {model}: {line.removeprefix('  - primary: ')}")
        elif line.startswith("  - selection control"):
            statements.append(f"- {model}: {line.removeprefix('  - ')}")
    control = ", the selection control" if any("selected" in e["per_source"] for e in table["models"].values()) else ""
    return "\n".join(
        [
            *lines,
            "",
            f"Global SDR in dB on the clean test songs {_world(table)}; {what}. Nominal 95 % intervals: "
            f"{table['method']} "
            + (
                "(coverage checked by simulation)."
                if all(e.get("coverage_checked") for e in table["models"].values())
                else "(with one run they span songs only: coverage not checked)."
            )
            + " The primary contrasts, declared in `compare.primary`:",
            "",
            *statements,
            "",
            *(_other_world(world, other) for world, other in (others or {}).items()),
            f"Details{control}, ablations and caveats: [docs/results.md]({paths.RESULTS_DOC.as_posix()}). "
            + _label_line(table.get("rounds", [])),
        ]
    )


def _other_world(world: str, table: dict) -> str:
    """One line of the headline: the primary contrasts on another world (:func:`worlds_section` has the rest)."""
    parts = [
        f"{model} {entry['refined']} − noisy {ci_text(entry['refined_minus_noisy'])}, − clean "
        f"{ci_text(entry['refined_minus_clean'])} (gap closed {pct_text(entry['gap_closed'])})"
        for model, entry in table["models"].items()
        if "refined_minus_clean" in entry
    ]
    some = next(iter(table["models"].values()))
    return (
        f"On the world `{world}` ({WORLD_NAMES.get(world, world)}; {some['replicates']} runs x {some['songs']} songs,"
        f" dB): {'; '.join(parts)}.\n"
    )


def interval_rows(table: dict) -> list[dict]:
    """One row per separator and condition (its alias when it has one): mean global SDR and its interval, dB."""
    return [
        {
            "model": model,
            "condition": display(t, _names(table)),
            **{k: round(entry[t][k], 4) for k in ("mean", "ci_low", "ci_high")},
            "runs": len(entry["runs"][t]),
        }
        for model, entry in table["models"].items()
        for t in entry["per_source"]
    ]


def compare_plot(path: Path, table: dict) -> None:
    """Global SDR per label table with its 95 % interval, one panel per model; the runs' means as dots."""
    from selfrefine.plots import plt, save_figure

    models = list(table["models"])
    width = max(5.0, 0.9 * max(len(table["models"][m]["per_source"]) for m in models))
    fig, axes = plt.subplots(1, len(models), figsize=(width * len(models), 5.0), squeeze=False)
    for ax, model in zip(axes[0], models):
        entry = table["models"][model]
        labels = list(entry["per_source"])
        means = [entry[t]["mean"] for t in labels]
        errors = [
            [entry[t]["mean"] - entry[t]["ci_low"] for t in labels],
            [entry[t]["ci_high"] - entry[t]["mean"] for t in labels],
        ]
        ax.errorbar(range(len(labels)), means, yerr=errors, fmt="o", capsize=6, color="black", label="mean, 95 % CI")
        for i, t in enumerate(labels):
            runs = entry["runs"][t]
            ax.plot([i + 0.15] * len(runs), runs, ".", color="tab:blue", alpha=0.7, label="one run" if i == 0 else None)
        ticks = [display(t, _names(table)).replace("@", "\n@") for t in labels]
        ax.set_xticks(range(len(labels)), ticks, fontsize=8, rotation=30, ha="right")
        ax.set_title(f"{model} ({len(entry['seeds'])} runs each)")
        ax.set_ylabel("global SDR (dB)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def round_rows(rounds: list[str]) -> list[dict]:
    """The committed run's classifier and refinement per round (``metrics/classifier/``, ``metrics/refine/``): exact
    match and macro F1 on clean test mixtures, the share of stems whose label set is right before and after, and
    per class the labels the refinement wrongly adds (false positives) or misses. Rounds whose truth is unknown
    are left out."""
    rows = []
    for name in rounds:
        classifier, refinement = paths.metrics("classifier", name), paths.metrics("refine", name)
        if not (classifier.is_file() and refinement.is_file()):
            continue
        c, r = json.loads(classifier.read_text()), json.loads(refinement.read_text())
        if "skipped" in c or "label_accuracy_refined" not in r:
            continue
        test, wrong = c["test_clean_mixtures"], {}
        for cls, v in r.get("per_class", {}).items():
            hit = v["recall"] * v["support"]
            # precision 0 hides how many labels were added (none, or only wrong ones): None, shown as "?"
            wrong[cls] = {"added": round(hit / v["precision"] - hit) if v["precision"] else None,
                          "missed": round(v["support"] - hit)}  # fmt: skip
        rows.append(
            {
                "round": name,
                "trained_on": c["trained_on"],
                "exact_match": test["exact_match"],
                "macro_f1": test["macro_f1"],
                "label_accuracy_noisy": r["label_accuracy_noisy"],
                "label_accuracy_input": r["label_accuracy_input"],
                "label_accuracy_refined": r["label_accuracy_refined"],
                "stems": r["stems"],
                "wrong_labels": wrong,
            }
        )
    return rows


def method_summary(rounds: list[dict]) -> str:
    """Classifier and refinement headline numbers per round (:func:`round_rows`), as markdown."""
    lines = [
        "| round | classifier trained on | clean-test exact match | macro F1 | stems whose label set is right: trained on → refined |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['round']} | {r['trained_on']} | {100 * r['exact_match']:.1f} % | {r['macro_f1']:.3f} | "
        f"{100 * r['label_accuracy_input']:.1f} % → {100 * r['label_accuracy_refined']:.1f} % |"
        for r in rounds
    ]
    return "\n".join(lines) + "\n"


def _verdict(value: dict, a: str, b: str) -> str:
    """``a − b`` in words: which side its interval lies on, or not established."""
    if value["ci_low"] > 0:
        return f"{a} above {b}"
    return f"{a} below {b}" if value["ci_high"] < 0 else "not established"


def worlds_section(tables: dict[str, dict]) -> str:
    """docs/results.md's worlds section: the same comparison on each generated world, side by side.

    Args:
        tables: per world (``generate.engine``), its comparison table (``compare.json``) with its committed run's
            rounds (:func:`round_rows`).
    """
    lines = [
        "| world | separator | runs x songs | noisy | refined | clean | refined − noisy | refined − clean | gap closed |",
        "|---" * 9 + "|",
    ]
    sources = ["| world | separator | labels | " + " | ".join(CLASSES) + " |", "|---" * (len(CLASSES) + 3) + "|"]
    per_source = [
        "| world | separator | contrast | " + " | ".join(CLASSES) + " |",
        "|---" * (len(CLASSES) + 3) + "|",
    ]
    verdicts = []
    for world, table in tables.items():
        for model, entry in table["models"].items():
            refined = entry.get("refined")
            if not refined or "clean" not in entry:
                continue
            lines.append(
                f"| {world} | {model} | {entry['replicates']} x {entry['songs']} | {ci_text(entry['noisy'])} | "
                f"{ci_text(entry[refined])} ({refined}) | {ci_text(entry['clean'])} | "
                f"{ci_text(entry['refined_minus_noisy'])} | {ci_text(entry['refined_minus_clean'])} | "
                f"{pct_text(entry['gap_closed'])} |"
            )
            for labels in ("noisy", refined, "clean"):
                cells = [f"{entry['per_source'][labels][c]:.2f}" for c in CLASSES]
                sources.append(f"| {world} | {model} | {labels} | " + " | ".join(cells) + " |")
            for a, b in ((refined, "noisy"), (refined, "clean")):
                contrast = _difference(entry, a, b) or {}
                cells = [ci_text(contrast[c]) if c in contrast else "" for c in CLASSES]
                per_source.append(f"| {world} | {model} | {a} − {b} | " + " | ".join(cells) + " |")
            low = [c for c in CLASSES if entry["per_source"][refined][c] < 1.0]
            verdicts.append(
                f"- {world}, {model}: refined − noisy: {_verdict(entry['refined_minus_noisy'], refined, 'noisy')}; "
                f"refined − clean: {_verdict(entry['refined_minus_clean'], refined, 'clean')}"
                + (f"; under 1 dB on {', '.join(low)} with {refined}" if low else "")
                + "."
            )
    rounds = [
        "| world | round | classifier trained on | clean-test exact match | labels right: in → out | wrong labels "
        "added / missed per class |",
        "|---" * 6 + "|",
    ]
    for world, table in tables.items():
        rows = table.get("rounds", [])
        for r in rows:
            wrong = ", ".join(
                f"{c} {'?' if w['added'] is None else w['added']}/{w['missed']}" for c, w in r["wrong_labels"].items()
            )
            rounds.append(
                f"| {world} | {r['round']} | {r['trained_on']} | {100 * r['exact_match']:.1f} % | "
                f"{100 * r['label_accuracy_input']:.1f} % → {100 * r['label_accuracy_refined']:.1f} % | {wrong} |"
            )
        by_name = {r["round"]: r for r in rows}
        iterated = [r for r in rows if r["trained_on"] != "clean"]
        if len(iterated) > 1:
            first, last = iterated[0], iterated[-1]
            step = 100 * (last["label_accuracy_refined"] - first["label_accuracy_refined"])
            total = sum((w["added"] or 0) + w["missed"] for w in last["wrong_labels"].values())
            top = max(last["wrong_labels"].items(), key=lambda cw: cw[1]["added"] or 0)
            text = (
                f"- {world}: round {last['round']} relabels "
                + (f"{'worse' if step < 0 else 'better'} than round {first['round']} ({step:+.1f} points, "
                   f"{abs(round(step * last['stems'] / 100))} of {last['stems']} stems)" if step
                   else f"as well as round {first['round']}")
                + f"; of its {total} wrong labels, {top[1]['added']} add `{top[0]}`"
            )  # fmt: skip
            clean = by_name.get("clean")
            if clean:
                gap = 100 * (clean["exact_match"] - last["exact_match"])
                text += f"; its classifier is {gap:.1f} points of exact match behind the clean-trained one"
            verdicts.append(text + ".")
    return (
        "\n".join(
            [
                *lines,
                "",
                "Per source, mean over runs and songs (dB):",
                "",
                *sources,
                "",
                "Per source, the contrasts with their 95 % intervals (exploratory where not declared primary):",
                "",
                *per_source,
                "",
                "Classifiers and labels of each world's committed run (exact match on clean test mixtures; wrong labels",
                "of the refined table against the truth):",
                "",
                *rounds,
                "",
                "What holds in each world (95 % intervals as above; 'not established' where one includes 0):",
                "",
                *verdicts,
            ]
        )
        + "\n"
    )
