"""Stage ``select``: the selection control, clean labels on only the stems a refined table's pools keep.

A separator trained on a refined table differs from one trained on clean labels in two ways: some stems get
other labels, and some stems leave the pools (under ``separate.pool: single`` a stem whose label set is not one
class trains nothing). The control ``selected`` separates the two: it gives every stem that the pools of
``separate.control`` (a refined table) keep its *clean* label set, and every other stem none, so it joins no
pool. If separators trained on ``selected`` match those trained on the refined table, the refined table's gain
over clean labels is data selection, not better labels (``selfrefine compare`` sets them side by side).

Writes ``data/labels/selected.csv`` and ``metrics/select/selected.json`` (pool sizes against clean's, and the
stems left without a label by their clean label set).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.labels import (
    LabelledStem,
    build_pools,
    format_labels,
    read_label_table,
    read_probabilities,
    write_label_table,
)
from selfrefine.errors import UserError
from selfrefine.outputs import write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.select")  # not __name__: run as __main__


def selected(
    clean: list[LabelledStem],
    control: list[LabelledStem],
    policy: str,
    keep: float = 1.0,
    probabilities: np.ndarray | None = None,
) -> list[LabelledStem]:
    """``clean``'s label sets on the stems that ``control``'s pools (``policy``, ranked to ``keep`` by the control's
    ``probabilities``) keep; no label on the others."""
    if [(s.song, s.stem) for s in clean] != [(s.song, s.stem) for s in control]:
        raise UserError("data/labels: the clean and control tables list different stems; rerun dvc repro")
    every = list(range(len(control)))
    kept = {i for pool in build_pools(control, policy, every, keep, probabilities).values() for i in pool}
    return [s if i in kept else LabelledStem(s.song, s.stem, s.path, frozenset()) for i, s in enumerate(clean)]


def run(params: Params) -> None:
    """Write ``data/labels/selected.csv`` from ``clean`` and ``separate.control``; ``metrics/select/selected.json``."""
    control_name = params.separate.control
    clean_path, control_path = paths.label_table("clean"), paths.label_table(control_name)
    paths.require(clean_path, control_path)
    clean, control = read_label_table(clean_path), read_label_table(control_path)
    keep = params.separate.keep
    table = selected(clean, control, params.separate.pool, keep, read_probabilities(control_path) if keep < 1 else None)
    every = list(range(len(table)))
    clean_pools = build_pools(clean, params.separate.pool, every)
    pools = build_pools(table, params.separate.pool, every)
    unlabelled = [c for c, s in zip(clean, table, strict=True) if c.labels and not s.labels]
    write_label_table(paths.label_table("selected"), table)
    write_json(
        paths.metrics("select", "selected"),
        {
            "control": control_name,
            "pool": params.separate.pool,
            **({"keep": keep} if keep < 1 else {}),
            "stems": len(table),
            "pool_sizes": {c: len(v) for c, v in pools.items()},
            "clean_pool_sizes": {c: len(v) for c, v in clean_pools.items()},
            "left_clean_pools": {c: len(clean_pools[c]) - len(pools[c]) for c in clean_pools},
            "unlabelled_by_clean_labels": dict(Counter(format_labels(s.labels) for s in unlabelled).most_common()),
        },
    )
    log.info("select: clean labels on the stems %s's pools keep; %d of clean's pooled stems left out", control_name,
             sum(len(v) for v in clean_pools.values()) - sum(len(v) for v in pools.values()))  # fmt: skip


if __name__ == "__main__":
    main(run)
