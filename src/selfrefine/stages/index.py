"""Stage ``index``: validate and index every stem; write the noisy and clean label tables."""

from __future__ import annotations

import logging
from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.index import INDEX_COLUMNS, Checks, build_index, label_tables
from selfrefine.data.labels import write_label_table
from selfrefine.outputs import write_csv, write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.index")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Write ``data/index.csv``, ``data/labels/{noisy,clean}.csv`` and ``metrics/index.json``."""
    p = params
    checks = Checks(p.audio.sample_rate, p.audio.channels, p.data.convert, p.data.silence_db, p.data.on_bad_file)
    rows, skipped = build_index(paths.NOISY, Path(p.data.root), checks)
    tables = label_tables(rows)
    write_csv(paths.INDEX, rows, INDEX_COLUMNS)
    for name, stems in tables.items():
        write_label_table(paths.label_table(name), stems)
    split = {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}
    write_json(
        Path("metrics/index.json"),
        {
            "stems": split,
            "silent": sum(int(r["silent"]) for r in rows),
            "skipped": len(skipped),
            "skipped_files": skipped,
            "truth_known": bool(tables["clean"]),
        },
    )
    log.info("index: %d train, %d test stems, %d skipped", split["train"], split["test"], len(skipped))


if __name__ == "__main__":
    main(run)
