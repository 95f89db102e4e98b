"""Stage ``corrupt``: inject label noise into data.root's training stems (swap / merge / silent)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.noise import corrupt_dataset
from selfrefine.outputs import write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.corrupt")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Write ``data/noisy`` (stems and ``truth.csv``) and ``metrics/noise.json``."""
    summary = corrupt_dataset(
        Path(params.data.root),
        paths.NOISY,
        params.noise.rate,
        asdict(params.noise.kinds),
        params.seed,
        params.audio.sample_rate,
        params.audio.channels,
        params.data.convert,
        params.data.truth,
    )
    write_json(Path("metrics/noise.json"), summary)
    log.info("corrupt: %d of %d stems (rate %.3f)", summary["corrupted"], summary["stems"], summary["rate"])


if __name__ == "__main__":
    main(run)
