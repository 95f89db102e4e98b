"""Stage ``validate``: check every key of params.yaml, so a typo fails even where no other stage reruns.

DVC accepts an appended key (``dvc exp run -S +refine.treshold=0.5``); stages track only the keys they
read, so such a key would change no stage. This stage tracks the whole file and validates it (every
stage validates it too when it runs): one line naming the key and its nearest valid spelling. It writes the
params as the stages read them, every default filled in (``metrics/params.json``).
"""

from __future__ import annotations

import dataclasses
import logging

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.outputs import write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.validate")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Write the validated params (:func:`selfrefine.stages.entry.run_stage` validated them on loading)."""
    write_json(paths.RESOLVED_PARAMS, dataclasses.asdict(params))
    log.info(
        "validate: params are valid (rounds %s; separators %s)",
        ", ".join(params.refine.rounds),
        ", ".join(params.separate.models),
    )


if __name__ == "__main__":
    main(run)
