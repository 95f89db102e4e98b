"""Benchmark: seconds per training step of the classifier and both separators at params.yaml's sizes,
and the refinement's throughput (stems per second).

Each model trains ``--steps`` timed steps (after one untimed warm-up step) on random mixes of a small
generated set with its params' batch size and crop/segment length; refinement relabels every stem of
that set with the (untrained) classifier, which costs the same as a trained one.

    python benchmarks/training.py --out benchmarks/results/training.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from selfrefine.config import load_params
from selfrefine.data.audio import samples
from selfrefine.data.labels import LabelledStem
from selfrefine.data.mixing import LabelMixer, SourceMixer
from selfrefine.data.stems import StemStore
from selfrefine.data.worlds import generate_dataset
from selfrefine.models.registry import build, loss
from selfrefine.outputs import write_json
from selfrefine.refine import stem_probabilities
from selfrefine.training.separation import build_pools, model_kwargs

from common import machine_info


def seconds_per_step(model: nn.Module, source, loss_fn, batch_size: int, steps: int) -> float:
    """Mean wall time of forward + backward + Adam over ``steps`` steps (one warm-up step first)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for step in range(steps + 1):
        began = time.perf_counter()
        inputs, targets = source.batch(batch_size)
        loss = loss_fn(model.train(), inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - began)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training.json"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--songs", type=int, default=12)
    args = parser.parse_args()
    p = load_params(args.params)
    sr, ch = p.audio.sample_rate, p.audio.channels
    torch.manual_seed(0)
    report: dict = {
        "settings": {"steps": args.steps, "songs": args.songs, "sample_rate": sr, "channels": ch},
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(root, args.songs, 0, p.generate.seconds, sr, ch, p.generate.seed)
        stems = [
            LabelledStem(s.name, c, str(s / f"{c}.wav"), frozenset({c}))
            for s in sorted((root / "train").iterdir())
            for c in ("bass", "drums", "other", "vocals")
        ]
        store = StemStore([s.path for s in stems], sr, ch, p.data.silence_db)

        tp = p.classifier.train
        classifier = build("classifier", {**p.classifier.model, "sample_rate": sr})
        crop = samples(tp.crop_seconds, sr)
        bce = nn.BCEWithLogitsLoss()
        s = seconds_per_step(
            classifier,
            LabelMixer(store, stems, crop, tp.max_stems, tp.gain_db, 0),
            lambda m, x, y: bce(m(x), y),
            tp.batch_size,
            args.steps,
        )
        report["classifier"] = {
            "seconds_per_step": round(s, 4),
            "batch_size": tp.batch_size,
            "parameters": sum(q.numel() for q in classifier.parameters()),
            "seconds_per_round": round(s * tp.steps, 1),
            "steps_per_round": tp.steps,
        }
        began = time.perf_counter()
        stem_probabilities(classifier.eval(), store, crop, samples(p.refine.hop_seconds, sr), p.refine.aggregate)
        report["refine"] = {
            "stems": len(stems),
            "stems_per_second": round(len(stems) / (time.perf_counter() - began), 1),
        }

        pools = build_pools(stems, "single", list(range(len(stems))))
        for name in p.separate.models:
            block = p.separators[name]
            model = build(name, model_kwargs(block.model, sr, ch, block.train.segment_seconds))
            segment = samples(block.train.segment_seconds, sr)
            s = seconds_per_step(
                model,
                SourceMixer(store, pools, segment, 0.0, 0, 0),
                loss(name, block.train.loss),
                block.train.batch_size,
                args.steps,
            )
            report[name] = {
                "seconds_per_step": round(s, 4),
                "batch_size": block.train.batch_size,
                "segment_seconds": block.train.segment_seconds,
                "parameters": sum(q.numel() for q in model.parameters()),
                "seconds_per_run": round(s * block.train.steps, 1),
                "steps": block.train.steps,
            }
    write_json(args.out, report)
    print({k: v for k, v in report.items() if k not in ("machine", "settings")})


if __name__ == "__main__":
    main()
