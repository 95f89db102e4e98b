"""Stage ``filter@<separator>``: model-based filtering of ``filter.labels`` into table ``filtered_<separator>``.

The separator trains on ``filter.labels`` as ``train@`` would (its ``separators`` block, ``separate``'s pools and
seed), scores every training stem (:mod:`selfrefine.filtering`) and writes the table with the low-scoring stems
unlabelled, keeping the input table's columns and adding each stem's ``filter_sdr``;
``metrics/filter/<separator>.json`` holds the pools before and after and, where the truth is known, how the
removals meet it; ``plots/filter/<separator>`` the score histograms.
"""

from __future__ import annotations

import logging

import numpy as np

from selfrefine import distributed, paths, plots
from selfrefine.config import Params
from selfrefine.data.labels import build_pools, parse_labels, write_label_table
from selfrefine.filtering import check_pools, filter_scores, filtered, stem_scores
from selfrefine.outputs import atomic_dir, read_csv, write_json
from selfrefine.stages.entry import main
from selfrefine.stages.train import fit

log = logging.getLogger("selfrefine.stages.filter")  # not __name__: run as __main__


def run(params: Params, name: str) -> dict[str, float] | None:
    """Train the scoring separator ``name``, score the stems of ``filter.labels`` and write ``filtered_<name>``."""
    source = params.filter.labels
    task, model, result = fit(params, name, source, f"filter_{name}")
    if not distributed.is_main():
        return None
    stems = task.stems  # the table fit read
    scores = stem_scores(model, task.store, stems, params.evaluate.overlap)
    threshold = params.filter.threshold_db
    table = filtered(stems, scores, threshold)
    columns = [{k: v for k, v in row.items() if k.startswith("p_")} for row in read_csv(paths.label_table(source))]
    extras = [{**c, "filter_sdr": "" if np.isnan(x) else f"{x:.2f}"} for c, x in zip(columns, scores, strict=True)]
    every = list(range(len(stems)))
    pools_before = build_pools(stems, params.separate.pool, every)
    pools_after = build_pools(table, params.separate.pool, every)
    check_pools(pools_before, pools_after, scores, threshold, f"filter@{name} ({paths.label_table(source)})")
    summary = {
        "labels": source,
        "threshold_db": threshold,
        "scorer_val_sdr": result.history[-1]["val_sdr"],
        "pool_sizes_before": {c: len(v) for c, v in pools_before.items()},
        "pool_sizes": {c: len(v) for c, v in pools_after.items()},
        "median_score_db": {c: float(np.nanmedian(scores[v])) if v else None for c, v in pools_before.items()},
    }
    truth_rows = {(r["song"], r["stem"]): r["truth"] for r in read_csv(paths.TRUTH)}
    truth = [truth_rows.get((s.song, s.stem), "?") for s in stems]
    known = None if "?" in truth else [parse_labels(t) for t in truth]
    if known is not None:
        summary.update(filter_scores(stems, table, known))
    write_label_table(paths.label_table(paths.filtered_table(name)), table, extras)
    with atomic_dir(paths.filter_plots(name)) as folder:
        plots.filter_scores(folder / "scores.png", scores, stems, known, threshold)
    write_json(paths.metrics("filter", name), summary)
    kept = sum(len(v) for v in pools_after.values())
    log.info(
        "filter@%s: %d of %d pooled stems kept at %.1f dB%s",
        name,
        kept,
        sum(len(v) for v in pools_before.values()),
        threshold,
        "" if known is None else f"; {summary['removed_wrong']} of the {summary['removed']} left out were mislabelled",
    )
    return {"train": result.seconds}


if __name__ == "__main__":
    main(run, ("name", "separator that filters (a block of separators, listed in filter.models)"), ranks=True)
