"""Stage ``generate``: write the embedded multitrack set (MUSDB18-HQ layout), synthesised or sampled."""

from __future__ import annotations

from pathlib import Path

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.worlds import generate_dataset
from selfrefine.stages.entry import main


def run(params: Params) -> None:
    """Make ``generate.train_songs`` + ``generate.test_songs`` songs into ``data/generated`` (seed ``generate.seed``,
    engine ``generate.engine``)."""
    g = params.generate
    generate_dataset(
        paths.GENERATED,
        g.train_songs,
        g.test_songs,
        g.seconds,
        params.audio.sample_rate,
        params.audio.channels,
        g.seed,
        g.test_seconds,
        g.engine,
        Path(g.soundfont),
    )


if __name__ == "__main__":
    main(run)
