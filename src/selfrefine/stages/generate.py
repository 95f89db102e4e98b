"""Stage ``generate``: write the embedded synthetic multitrack set (MUSDB18-HQ layout)."""

from __future__ import annotations

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.data.synth import generate_dataset
from selfrefine.stages.entry import main


def run(params: Params) -> None:
    """Synthesise ``generate.train_songs`` + ``generate.test_songs`` songs into ``data/generated`` (seed ``generate.seed``)."""
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
    )


if __name__ == "__main__":
    main(run)
