"""Helpers the model stages share: the stem store, and the outputs of a baseline that cannot run."""

from __future__ import annotations

import logging
from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.stems import StemStore
from selfrefine.outputs import read_csv, write_json, write_text

log = logging.getLogger(__name__)


def skip(metrics: Path, folders: list[Path], reason: str) -> None:
    """Outputs of a baseline stage that cannot run (no ground truth): each folder holds a SKIPPED note."""
    log.warning("%s", reason)
    for folder in folders:
        write_text(folder / "SKIPPED", f"skipped: {reason}\n")
    write_json(metrics, {"skipped": reason})


def stem_store(params: Params, stem_paths: list[str]) -> StemStore:
    """The stems at ``stem_paths``, read on demand at the pipeline's rate and channel count."""
    return StemStore(stem_paths, params.audio.sample_rate, params.audio.channels, params.data.silence_db)


def index_rows(split: str) -> list[dict]:
    """The index's rows of ``split`` (``train`` or ``test``); says to run ``index`` first when there is none."""
    paths.require(paths.INDEX)
    return [r for r in read_csv(paths.INDEX) if r["split"] == split]
