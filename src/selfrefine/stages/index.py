"""Stage ``index``: find the stems of data.root (in data.layout) and data.test_root, and validate each once."""

from __future__ import annotations

import logging
from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.index import INDEX_COLUMNS, Checks, build_index
from selfrefine.outputs import write_csv, write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.index")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Write ``data/index.csv`` (the user's files) and ``metrics/index.json`` (what was skipped and why)."""
    p = params
    checks = Checks(p.audio.sample_rate, p.audio.channels, p.data.convert, p.data.silence_db, p.data.on_bad_file)
    rows, skipped = build_index(Path(p.data.root), p.data.layout, Path(p.data.test_root), checks)
    write_csv(paths.INDEX, rows, INDEX_COLUMNS)
    split = {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}
    songs = {s: len({r["song"] for r in rows if r["split"] == s}) for s in ("train", "test")}
    write_json(
        Path("metrics/index.json"),
        {
            "layout": p.data.layout,
            "songs": songs,
            "stems": split,
            "silent": sum(int(r["silent"]) for r in rows),
            "skipped": len(skipped),
            "skipped_files": skipped,
        },
    )
    log.info(
        "index: %d train stems (%d songs), %d test songs, %d skipped",
        split["train"],
        songs["train"],
        songs["test"],
        len(skipped),
    )
    for s in skipped:
        log.warning("skipped %s", s["reason"])


if __name__ == "__main__":
    main(run)
