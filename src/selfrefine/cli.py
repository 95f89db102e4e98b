"""``selfrefine``: one sub-command per DVC stage, plus ``compare`` and ``profile``.

Each stage command reads params.yaml (validated), calls the library and writes its outputs
atomically; ``stages/<name>.py`` runs the same command, so any stage can be run by hand
(``selfrefine classify --help``). Output paths are the pipeline's conventions (see dvc.yaml).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from selfrefine.config import load_params
from selfrefine.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
log = logging.getLogger("selfrefine")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file")]
ROUNDS: dict[str, tuple[str, str]] = {
    "1": ("noisy", "refined_1"),
    "2": ("refined_1", "refined_2"),
    "clean": ("clean", "refined_by_clean"),
}
"""Refinement round -> (label table its classifier trains on, label table its refinement writes)."""


def _stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn bad input (:class:`UserError`) into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@_stage
def generate(params: ParamsOpt = Path("params.yaml"), out: Path = Path("data/generated")) -> None:
    """Write the embedded synthetic multitrack set (MUSDB18-HQ layout)."""
    from selfrefine.synth import generate_dataset

    p = load_params(params)
    g = p.generate
    generate_dataset(out, g.train_songs, g.test_songs, g.seconds, p.audio.sample_rate, p.audio.channels, p.seed)


@app.command()
@_stage
def corrupt(params: ParamsOpt = Path("params.yaml"), out: Path = Path("data/noisy"),
            metrics: Path = Path("metrics/noise.json")) -> None:
    """Inject label noise into data.root's training stems (swap / merge / silent)."""
    from dataclasses import asdict

    from selfrefine.noise import corrupt_dataset
    from selfrefine.outputs import write_json

    p = load_params(params)
    summary = corrupt_dataset(Path(p.data.root), out, p.noise.rate, asdict(p.noise.kinds), p.seed,
                              p.audio.sample_rate, p.audio.channels, p.data.convert, p.data.truth)
    write_json(metrics, summary)
    log.info("corrupt: %d of %d stems (rate %.3f)", summary["corrupted"], summary["stems"], summary["rate"])


@app.command()
@_stage
def index(params: ParamsOpt = Path("params.yaml"), noisy: Path = Path("data/noisy"),
          out: Path = Path("data/index.csv"), metrics: Path = Path("metrics/index.json")) -> None:
    """Validate and index every stem; write the noisy and clean label tables."""
    from selfrefine.data import INDEX_COLUMNS, Checks, build_index, label_tables, labels_path, write_label_table
    from selfrefine.outputs import write_csv, write_json

    p = load_params(params)
    checks = Checks(p.audio.sample_rate, p.audio.channels, p.data.convert, p.data.silence_db, p.data.on_bad_file)
    rows, skipped = build_index(noisy, Path(p.data.root), checks)
    tables = label_tables(rows)
    write_csv(out, rows, INDEX_COLUMNS)
    for name, stems in tables.items():
        write_label_table(labels_path(name), stems)
    split = {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}
    write_json(metrics, {"stems": split, "silent": sum(int(r["silent"]) for r in rows),
                         "skipped": len(skipped), "skipped_files": skipped, "truth_known": bool(tables["clean"])})
    log.info("index: %d train, %d test stems, %d skipped", split["train"], split["test"], len(skipped))


@app.command()
@_stage
def classify(round: Annotated[str, typer.Argument(help="1, 2 or clean")],
             params: ParamsOpt = Path("params.yaml")) -> None:
    """Mix-train the instrument classifier of one refinement round and score it on clean test mixtures."""
    from selfrefine import pipeline

    pipeline.classify(load_params(params), _round(round), ROUNDS[round][0])


@app.command()
@_stage
def refine(round: Annotated[str, typer.Argument(help="1, 2 or clean")],
           params: ParamsOpt = Path("params.yaml")) -> None:
    """Relabel every training stem with a round's classifier."""
    from selfrefine import pipeline

    pipeline.refine(load_params(params), _round(round), *ROUNDS[round])


@app.command()
@_stage
def train(model: Annotated[str, typer.Argument(help="demucs or xumx")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Train a separator on the label table chosen by separate.labels."""
    from selfrefine import pipeline
    from selfrefine.models import SEPARATORS

    if model not in SEPARATORS:
        raise UserError(f"unknown separator '{model}'; use one of {', '.join(SEPARATORS)}")
    pipeline.train(load_params(params), model)


@app.command()
@_stage
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Separate the clean test songs with both separators and score SDR."""
    from selfrefine import pipeline

    pipeline.evaluate(load_params(params))


@app.command()
@_stage
def compare(labels: Annotated[str, typer.Option(help="comma-separated label tables to compare")] =
            "noisy,refined_2,refined_by_clean,clean",
            stamp: Annotated[str | None, typer.Option(help="reuse an interrupted comparison's stamp")] = None) -> None:
    """Queue one experiment per label table, run them, and write metrics/compare.{json,md}, a plot and the
    README's results section."""
    from selfrefine.compare import run_comparison

    run_comparison([s.strip() for s in labels.split(",") if s.strip()], stamp)


@app.command()
@_stage
def profile(name: Annotated[str, typer.Argument(help="a file in profiles/ without .yaml, e.g. paper")],
            params: ParamsOpt = Path("params.yaml")) -> None:
    """Apply a profile's overrides (profiles/NAME.yaml) to params.yaml, keeping its comments; validated."""
    import io

    from ruamel.yaml import YAML, YAMLError

    from selfrefine.config import merge_into, parse_params
    from selfrefine.outputs import write_text

    source = Path("profiles") / f"{name}.yaml"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in Path("profiles").glob("*.yaml")))
        raise UserError(f"{source}: no such profile; available: {known}")
    yaml = YAML()
    try:
        document, override = yaml.load(params.read_text()), yaml.load(source.read_text()) or {}
    except YAMLError as err:
        raise UserError(f"{params} or {source}: invalid YAML ({str(err).splitlines()[0]})") from None
    merge_into(document, override)
    parse_params(document, f"{params} + {source}")
    text = io.StringIO()
    yaml.dump(document, text)
    write_text(params, text.getvalue())
    log.info("profile: applied %s to %s", source, params)


def _round(value: str) -> str:
    if value not in ROUNDS:
        raise UserError(f"unknown round '{value}'; use one of {', '.join(ROUNDS)}")
    return value


def main() -> None:
    """Console entry point."""
    app(prog_name="selfrefine")


if __name__ == "__main__":
    sys.exit(main())
