"""Stage ``validate``: check every key of params.yaml, so a typo fails even where no other stage reruns.

DVC accepts an appended key (``dvc exp run -S +refine.treshold=0.5``); stages track only the keys they
read, so such a key would change no stage. This stage tracks the whole file and validates it (every
stage validates it too when it runs): one line naming the key and its nearest valid spelling.
"""

from __future__ import annotations

import logging

from selfrefine.config import Params
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.validate")  # not __name__: run as __main__


def run(params: Params) -> None:
    """Nothing to do beyond loading: :func:`selfrefine.stages.entry.run_stage` validated ``params``."""
    log.info(
        "validate: params are valid (rounds %s; separators %s)",
        ", ".join(params.refine.rounds),
        ", ".join(params.separate.models),
    )


if __name__ == "__main__":
    main(run)
