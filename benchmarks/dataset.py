"""Benchmark: time and size of generating the embedded default dataset (params.yaml's `generate` block).

python benchmarks/dataset.py --out benchmarks/results/dataset.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from selfrefine.config import load_params
from selfrefine.data.worlds import generate_dataset
from selfrefine.outputs import write_json

from common import machine_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dataset.json"))
    args = parser.parse_args()
    p = load_params(args.params)
    g = p.generate
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "generated"
        began = time.perf_counter()
        generate_dataset(
            root, g.train_songs, g.test_songs, g.seconds, p.audio.sample_rate, p.audio.channels, g.seed, g.test_seconds
        )
        seconds = time.perf_counter() - began
        files = list(root.rglob("*.wav"))
        size = sum(f.stat().st_size for f in files)
    songs = g.train_songs + g.test_songs
    report = {
        "settings": {
            "train_songs": g.train_songs,
            "test_songs": g.test_songs,
            "seconds": g.seconds,
            "sample_rate": p.audio.sample_rate,
            "channels": p.audio.channels,
        },
        "seconds_total": round(seconds, 3),
        "seconds_per_song": round(seconds / songs, 4),
        "files": len(files),
        "bytes": size,
        "megabytes": round(size / 2**20, 1),
        "audio_hours": round(songs * 4 * g.seconds / 3600, 3),
        "machine": machine_info(),
    }
    write_json(args.out, report)
    print(f"{songs} songs, {len(files)} files, {report['megabytes']} MiB in {seconds:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
