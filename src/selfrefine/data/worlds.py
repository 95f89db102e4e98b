"""The embedded default's songs, from one of two worlds (``generate.engine``), written in the MUSDB18-HQ layout.

* ``synth`` (:mod:`selfrefine.data.synth`): every instrument synthesised (additive tones, filtered noise, formants).
* ``sampled`` (:mod:`selfrefine.data.sampled`): the same kind of musical plans played from a General MIDI
  soundfont, i.e. sampled recordings of real instruments.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from selfrefine.data.audio import write_audio
from selfrefine.data.synth import synthesize_song
from selfrefine.outputs import atomic_dir

logger = logging.getLogger(__name__)

ENGINES = ("synth", "sampled")
"""How the songs are made (``generate.engine``)."""

PLANS = "render_plans.json"
"""With the sampled engine, each song's programs and sections (:class:`selfrefine.data.sampled.RenderPlan`), in
``<root>/render_plans.json``: ``{"<split>/<song>": plan}``."""


def generate_dataset(
    root: Path,
    train_songs: int,
    test_songs: int,
    seconds: float,
    sample_rate: int,
    channels: int,
    seed: int,
    test_seconds: float | None = None,
    engine: str = "synth",
    soundfont: Path | None = None,
) -> None:
    """Write a generated dataset in the MUSDB18-HQ layout, atomically.

    Writes ``<root>/{train,test}/<split>_<i:04d>/{bass,drums,other,vocals}.wav`` (32-bit float WAV of shape
    ``(samples, channels)`` on disk), and with the sampled engine ``<root>/render_plans.json``. Each song's seed is
    drawn from its own child of ``np.random.SeedSequence(seed)``, so train and test never share a song, and the
    whole folder appears only once every song is written (an existing ``root`` is replaced).

    Args:
        root: dataset folder.
        train_songs: number of training songs.
        test_songs: number of test songs.
        seconds: length of every training song.
        sample_rate: samples per second.
        channels: 1 or 2.
        seed: dataset seed.
        test_seconds: length of every test song (default: ``seconds``).
        engine: ``synth`` or ``sampled`` (:data:`ENGINES`).
        soundfont: the sampled engine's General MIDI soundfont (default:
            :data:`selfrefine.data.sampled.SOUNDFONT`).

    Raises:
        ValueError: a negative song count, an unknown engine, or an argument the engine rejects.
        selfrefine.errors.UserError: the sampled engine and no soundfont at ``soundfont``.
    """
    if train_songs < 0 or test_songs < 0:
        raise ValueError(f"song counts must be non-negative, got {train_songs} train and {test_songs} test")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine}")
    if engine == "sampled":
        from selfrefine.data import sampled

        font = Path(soundfont or sampled.SOUNDFONT)
        sampled.renderer(font, sample_rate)  # a missing soundfont stops here, before anything is written

        def song(seed: int, length: float) -> tuple[dict[str, np.ndarray], dict | None]:
            stems, plan = sampled.sample_song(seed, length, sample_rate, channels, font)
            return stems, asdict(plan)

    else:

        def song(seed: int, length: float) -> tuple[dict[str, np.ndarray], dict | None]:
            return synthesize_song(seed, length, sample_rate, channels), None

    total = train_songs + test_songs
    song_seeds = [int(s.generate_state(1, np.uint64)[0]) for s in np.random.SeedSequence(seed).spawn(total)]
    test_seconds = seconds if test_seconds is None else test_seconds
    logger.info(
        "%s: %d train songs of %.1f s + %d test songs of %.1f s at %d Hz, %d channel(s) into %s",
        engine, train_songs, seconds, test_songs, test_seconds, sample_rate, channels, root,
    )  # fmt: skip
    done = 0
    plans = {}
    with atomic_dir(root) as tmp:
        for split, count, first, length in (
            ("train", train_songs, 0, seconds),
            ("test", test_songs, train_songs, test_seconds),
        ):
            (tmp / split).mkdir()
            for i in range(count):
                stems, plan = song(song_seeds[first + i], length)
                for name, audio in stems.items():
                    write_audio(tmp / split / f"{split}_{i:04d}" / f"{name}.wav", audio, sample_rate)
                if plan is not None:
                    plans[f"{split}/{split}_{i:04d}"] = plan
                done += 1
                if (10 * done) // total > (10 * (done - 1)) // total:
                    logger.info("%s: %d/%d songs", engine, done, total)
        if plans:
            (tmp / PLANS).write_text(json.dumps(plans, indent=1) + "\n")
