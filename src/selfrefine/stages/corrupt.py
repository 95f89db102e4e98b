"""Stage ``corrupt``: inject label noise into the indexed training stems; write the noisy and clean label tables."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.labels import write_label_table
from selfrefine.data.noise import corrupt_dataset, label_tables
from selfrefine.outputs import write_json
from selfrefine.stages.common import index_rows
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.corrupt")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Write ``data/noisy`` (stems and ``truth.csv``), ``data/labels/{noisy,clean}.csv`` and ``metrics/noise.json``."""
    rows, summary = corrupt_dataset(
        index_rows("train"),
        paths.NOISY,
        params.noise.rate,
        asdict(params.noise.kinds),
        params.seed,
        params.audio.sample_rate,
        params.audio.channels,
        params.data.convert,
        params.data.truth,
    )
    for name, stems in label_tables(rows).items():
        write_label_table(paths.label_table(name), stems)
    write_json(Path("metrics/noise.json"), summary)
    log.info("corrupt: %d of %d stems (rate %.3f)", summary["corrupted"], summary["stems"], summary["rate"])


if __name__ == "__main__":
    main(run)
