"""Stage ``evaluate@<separator>``: separate the clean test songs and score SDR."""

from __future__ import annotations

import logging

from selfrefine import CLASSES, paths, plots
from selfrefine.config import Params
from selfrefine.data.index import evaluation_songs
from selfrefine.evaluation.separation import evaluate_separator
from selfrefine.models.checkpoints import load_checkpoint
from selfrefine.outputs import atomic_dir, read_csv, write_csv, write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.evaluate")  # not __name__: run as __main__


def run(params: Params, name: str) -> dict[str, float]:
    """Write ``metrics/separation/<name>.json``, per-song scores and plots, and the estimates."""
    paths.require(paths.separator_model(name), paths.INDEX)
    model, package = load_checkpoint(paths.separator_model(name))
    songs = evaluation_songs(read_csv(paths.INDEX))
    ep = params.evaluate
    with atomic_dir(paths.estimates(name)) as estimates:
        result = evaluate_separator(
            model,
            songs,
            params.audio.sample_rate,
            params.audio.channels,
            ep.overlap,
            ep.bsseval,
            ep.museval_check,
            estimates,
        )
    write_json(
        paths.metrics("separation", name),
        {
            "labels": package["provenance"]["labels"],
            "songs": result["songs"],
            "global_sdr": result["global_sdr"],
            "sdr": result["sdr"],
            **{k: v for k, v in result.items() if k == "museval_max_abs_diff_db"},
        },
    )
    with atomic_dir(paths.separation_plots(name)) as folder:  # the figures and tables appear together or not at all
        rows = [
            {
                "source": source,
                "global_sdr": result["global_sdr"]["mean"][source],
                "sdr": result["sdr"]["median"][source] if result["sdr"] else float("nan"),
            }
            for source in CLASSES
        ]
        write_csv(folder / "sdr.csv", rows, ["source", "global_sdr", "sdr"])
        songs_rows = [
            {
                "song": song,
                "source": source,
                "global_sdr": scores["global_sdr"][source],
                "sdr": scores["sdr"][source] if "sdr" in scores else float("nan"),
            }
            for song, scores in result["per_song"].items()
            for source in CLASSES
        ]
        write_csv(folder / "songs.csv", songs_rows, ["song", "source", "global_sdr", "sdr"])
        plots.sdr_bars(folder / "sdr.png", rows, f"{name} trained on {package['provenance']['labels']} labels")
    log.info(
        "evaluate@%s: global SDR %.2f dB (mean over songs and sources)",
        name,
        result["global_sdr"]["mean"]["mean_over_sources"],
    )
    return result["seconds"]


if __name__ == "__main__":
    main(run, ("name", "separator (trained by train@<name>)"))
