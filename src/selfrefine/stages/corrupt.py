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


def dvc_links_cache() -> bool:
    """Whether DVC, committing ``data/noisy``, may hard-link its files into its cache (cache types starting with
    ``hardlink``, or no DVC config found here): it then makes them read-only, and a hard-linked user's file
    would become a read-only cache object. With ``reflink``/``copy``/``symlink`` DVC copies into its cache."""
    try:
        from dvc.config import Config
        from dvc.repo import Repo

        Repo.find_root()  # raises outside a DVC repository
        types = Config.from_cwd()["cache"].get("type") or ["reflink", "copy"]
    except Exception:  # no DVC repository (a stage run by hand) or an unreadable config
        return True
    return (types if isinstance(types, list) else [types])[0] == "hardlink"


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
        link=not dvc_links_cache(),
    )
    for name, stems in label_tables(rows).items():
        write_label_table(paths.label_table(name), stems)
    write_json(Path("metrics/noise.json"), summary)
    log.info("corrupt: %d of %d stems (rate %.3f)", summary["corrupted"], summary["stems"], summary["rate"])


if __name__ == "__main__":
    main(run)
