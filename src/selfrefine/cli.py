"""The ``selfrefine`` command: one command per pipeline stage, and the faces on top of them.

A face over the stage bodies (:mod:`selfrefine.stages`), which DVC runs directly: nothing here is a
dependency of any stage, so editing a command or its help reruns nothing. Stage commands run the same
body as ``python -m selfrefine.stages.<name>`` and write the same outputs.
"""

from __future__ import annotations

import importlib
import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from selfrefine.errors import UserError, disk_full
from selfrefine.paths import AUDIT_REPORT, PARAMS, PROFILES, SEPARATED, separator_model

HELP = (
    "Self-refining pseudo labels for music source separation. The pipeline's stages by hand (validate, generate, "
    "index, corrupt, classify, refine, select, filter, train, evaluate, summarize: the bodies `dvc repro` runs), and check, "
    "profile, compare, study, audit and separate."
)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
log = logging.getLogger("selfrefine")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file")]
DEFAULT_SEPARATOR = separator_model("demucs")
NprocOpt = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="training processes on this machine (as launch.nproc): N > 1 runs N ranks with torchrun (one per GPU)",
    ),
]


def _stage(name: str, params: Path, *args: str, nproc: int = 1) -> None:
    """Run stage body ``selfrefine.stages.<name>`` as DVC would (timing record included); ``nproc`` > 1 runs it as
    that many ranks under torch's launcher, as ``--nproc`` does for DVC."""
    from selfrefine.stages.entry import run_stage, torchrun

    if nproc > 1:
        code = torchrun(nproc, f"selfrefine.stages.{name}", [*args, "--params", str(params)])
    else:
        body = importlib.import_module(f"selfrefine.stages.{name}").run
        code = run_stage("_".join([name, *args[:1]]), body, params, *args)
    if code:
        raise typer.Exit(code)


def _face(fn, *args) -> None:
    """Run a non-stage command; bad input becomes one ``error:`` line and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        fn(*args)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    except OSError as err:
        full = disk_full(err, [Path.cwd(), Path(tempfile.gettempdir())])
        if full is None:
            raise
        typer.echo(f"error: {full}", err=True)
        raise typer.Exit(1) from None


def _round_table(params: Path, round_key: str) -> str:
    """The label table round ``round_key`` trains on (``refine.rounds``)."""
    from selfrefine.config import load_params

    try:
        rounds = load_params(params).refine.rounds
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    if round_key not in rounds:
        typer.echo(f"error: unknown round '{round_key}'; refine.rounds has {', '.join(rounds)}", err=True)
        raise typer.Exit(1)
    return rounds[round_key]


@app.command()
def validate(params: ParamsOpt = PARAMS) -> None:
    """Validate every key of params.yaml (the stage DVC reruns on any params change)."""
    _stage("validate", params)


@app.command()
def generate(params: ParamsOpt = PARAMS) -> None:
    """Write the embedded synthetic multitrack set (MUSDB18-HQ layout) to data/generated."""
    _stage("generate", params)


@app.command()
def index(params: ParamsOpt = PARAMS) -> None:
    """Validate every training stem of data.root and every test song where they are; write data/index.csv."""
    _stage("index", params)


@app.command()
def corrupt(params: ParamsOpt = PARAMS) -> None:
    """Inject label noise (swap, merge, silent, foreign) into the indexed stems; write the label tables."""
    _stage("corrupt", params)


@app.command()
def classify(
    round_key: Annotated[str, typer.Argument(metavar="ROUND", help="a key of refine.rounds, e.g. 1")],
    params: ParamsOpt = PARAMS,
    nproc: NprocOpt = 1,
) -> None:
    """Mix-train the instrument classifier of one refinement round and score it on clean test mixtures."""
    _stage("classify", params, round_key, _round_table(params, round_key), nproc=nproc)


@app.command()
def refine(
    round_key: Annotated[str, typer.Argument(metavar="ROUND", help="a key of refine.rounds, e.g. 1")],
    params: ParamsOpt = PARAMS,
) -> None:
    """Relabel every training stem with a round's classifier."""
    _stage("refine", params, round_key, _round_table(params, round_key))


@app.command()
def select(params: ParamsOpt = PARAMS) -> None:
    """The selection control: clean labels on only the stems separate.control's pools keep (table selected)."""
    _stage("select", params)


@app.command("filter")
def filter_stage(
    name: Annotated[str, typer.Argument(help="a separator listed in filter.models, e.g. demucs")],
    params: ParamsOpt = PARAMS,
    nproc: NprocOpt = 1,
) -> None:
    """Model-based filtering: a separator trained on filter.labels leaves out the stems it cannot explain (table filtered_<name>)."""
    _stage("filter", params, name, nproc=nproc)


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="a separator, e.g. demucs or xumx")],
    params: ParamsOpt = PARAMS,
    nproc: NprocOpt = 1,
) -> None:
    """Train a separator on the label table chosen by separate.labels."""
    _stage("train", params, name, nproc=nproc)


@app.command()
def evaluate(
    name: Annotated[str, typer.Argument(help="a trained separator, e.g. demucs")],
    params: ParamsOpt = PARAMS,
) -> None:
    """Separate the clean test songs with a trained separator and score SDR."""
    _stage("evaluate", params, name)


@app.command()
def summarize(params: ParamsOpt = PARAMS) -> None:
    """Collect the method's key numbers from the stages' reports into metrics.json (what dvc exp show shows)."""
    _stage("summarize", params)


@app.command()
def check(params: ParamsOpt = PARAMS) -> None:
    """Validate params.yaml, every model block and loss (each model run once) and DVC's dvc.lock and rwlock."""
    _face(check_all, params)


def check_all(params: Path) -> None:
    """:func:`check_params`, then DVC's files in the project of ``params`` (:mod:`selfrefine.dvcfiles`)."""
    from selfrefine.dvcfiles import damaged

    check_params(params)
    problems = damaged(params.parent)
    if problems:
        raise UserError("; ".join(problems))


def check_params(params: Path) -> None:
    """Validate ``params``, then every model block against its constructor, every separator's loss, and each model
    built and run once (:func:`try_models`)."""
    from selfrefine.config import load_params
    from selfrefine.models.registry import check_block, loss

    p = load_params(params)
    try:
        check_block("classifier", p.classifier.model)
        for name, block in p.separators.items():
            check_block(name, block.model)
            loss(name, block.train.loss)
        try_models(p)
    except UserError as err:
        raise UserError(f"{params}: {err}") from None
    log.info(
        "check: %s is valid (rounds %s; separators %s)",
        params,
        ", ".join(p.refine.rounds),
        ", ".join(p.separate.models),
    )


def try_models(p) -> None:
    """Build every model as its stage will (the block plus what the data fills in) and run it once on a short
    silent CPU input: a value that its constructor or its forward rejects (a timm variant that does not exist,
    an FFT size the model cannot use) stops here, not minutes into a stage."""
    import torch

    from selfrefine.data.audio import samples
    from selfrefine.models.registry import ModelError, block_key, build
    from selfrefine.training.mixtrain import classifier_kwargs
    from selfrefine.training.separation import model_kwargs

    sr, channels = p.audio.sample_rate, p.audio.channels
    models = [("classifier", classifier_kwargs(p.classifier.model, sr), p.classifier.train.crop_seconds)]
    models += [
        (name, model_kwargs(block.model, sr, channels, block.train.segment_seconds), block.train.segment_seconds)
        for name, block in p.separators.items()
    ]
    torch.manual_seed(0)
    for name, kwargs, seconds in models:
        model = build(name, kwargs).eval()
        try:
            with torch.no_grad():
                model(torch.zeros(1, channels, samples(seconds, sr)))
        except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelError(
                f"{block_key(name)}.model: {type(model).__name__} fails on a {seconds:g} s input ({reason}); "
                "change the block's values"
            ) from None


@app.command()
def compare(
    labels: Annotated[
        str | None,
        typer.Option(
            help="comma-separated conditions: a label table, optionally with params overrides after '@', e.g. "
            "refined_2@refine.threshold=0.9, or an alias of compare.aliases (default: compare.labels)"
        ),
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="runs per table, seeds 0..N-1 (default: compare.seeds)")] = None,
    vary: Annotated[
        str | None,
        typer.Option(
            help="what a run's seed sets: pipeline (seed: noise draw, classifiers, separators) or separators "
            "(separate.seed alone) (default: compare.vary)"
        ),
    ] = None,
    stamp: Annotated[str | None, typer.Option(help="reuse an interrupted comparison's stamp")] = None,
    jobs: Annotated[
        int | None, typer.Option(help="experiments run at once by DVC queue workers (default: compare.jobs)")
    ] = None,
    poll: Annotated[float, typer.Option(min=0.1, help="seconds between checks of the DVC queue")] = 15.0,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/N",
            help="run only the I-th of N shares of the batch on this machine (0-based; needs --stamp); then push "
            "the experiments (dvc exp push), pull them on one machine and run compare there with the same --stamp",
        ),
    ] = None,
    tabulate: Annotated[
        bool,
        typer.Option(
            "--tabulate",
            help="run nothing: redo the intervals, tables, plot, docs/results.md and the README headline from "
            "metrics/compare/",
        ),
    ] = False,
    params: ParamsOpt = PARAMS,
) -> None:
    """Train the separators on each label table and seed as DVC experiments; write intervals and docs/results.md."""
    from selfrefine.config import load_params
    from selfrefine.experiments import compare as comparison

    def body() -> None:
        p = load_params(params)
        if tabulate:
            comparison.tabulate(p)
            return
        tables = [s.strip() for s in labels.split(",") if s.strip()] if labels else p.compare.labels
        if seeds is not None and seeds < 1:
            raise UserError(f"--seeds {seeds}: expected at least 1")
        if jobs is not None and jobs < 1:
            raise UserError(f"--jobs {jobs}: expected at least 1")
        if vary not in (None, "pipeline", "separators"):
            raise UserError(f"--vary {vary}: expected pipeline or separators")
        comparison.run_comparison(
            p, tables, seeds or p.compare.seeds, stamp, poll, jobs=jobs, shard=_shard(shard, stamp), vary=vary
        )

    _face(body)


def _shard(text: str | None, stamp: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as ``(I, N)``; a malformed share, or one without ``--stamp``, is a one-line error."""
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise UserError(f"--shard {text}: expected I/N with 0 <= I < N, e.g. 0/2 and 1/2 on two machines")
    if stamp is None:
        raise UserError("--shard: give every machine the same --stamp (e.g. --stamp $(date +%Y%m%d-%H%M%S))")
    return int(i), int(n)


@app.command()
def study(
    name: Annotated[str, typer.Argument(help="noise-rate | threshold | iterations (grids: params study.*)")],
    stamp: Annotated[str | None, typer.Option(help="resume an interrupted study: its stamp")] = None,
    jobs: Annotated[
        int | None, typer.Option(help="experiments run at once by DVC queue workers (default: study.jobs)")
    ] = None,
    poll: Annotated[float, typer.Option(min=0.1, help="seconds between checks of the DVC queue")] = 15.0,
    tabulate: Annotated[
        bool,
        typer.Option("--tabulate", help="run nothing: redo the JSON, plot and docs/studies.md from metrics/studies/"),
    ] = False,
    params: ParamsOpt = PARAMS,
) -> None:
    """Sweep the noise, the threshold or the number of rounds as DVC experiments; write docs/studies.md."""
    from selfrefine.config import load_params
    from selfrefine.experiments import studies

    def body() -> None:
        p = load_params(params)
        studies.points(name, p)  # an unknown study fails here, before anything is queued
        if tabulate:
            studies.tabulate(p, name)
            return
        if jobs is not None and jobs < 1:
            raise UserError(f"--jobs {jobs}: expected at least 1")
        studies.run_study(p, name, stamp, jobs, poll)

    _face(body)


@app.command()
def audit(
    root: Annotated[Path, typer.Argument(help="the stem library (default: data.root)")] = None,
    layout: Annotated[str | None, typer.Option(help="musdb, songs or csv (default: data.layout)")] = None,
    classifier: Annotated[
        Path | None, typer.Option(help="classifier checkpoint (default: the last refinement round's)")
    ] = None,
    out: Annotated[Path, typer.Option(help="report folder (replaced)")] = AUDIT_REPORT,
    truth: Annotated[
        Path | None, typer.Option(help="CSV of song,stem,truth (e.g. data/noisy/truth.csv): adds top-k precision")
    ] = None,
    params: ParamsOpt = PARAMS,
) -> None:
    """Rank a library's stems by how likely their file-name label is wrong: CSV and an offline HTML report."""
    from selfrefine.audit import audit as run_audit
    from selfrefine.audit import default_classifier
    from selfrefine.config import load_params

    def body() -> None:
        p = load_params(params)
        run_audit(
            p,
            root or Path(p.data.root),
            layout or p.data.layout,
            classifier or default_classifier(p),
            out,
            truth,
        )

    _face(body)


@app.command()
def separate(
    files: Annotated[list[Path], typer.Argument(help="songs to separate (any rate, channels, WAV/FLAC/...)")],
    model: Annotated[Path, typer.Option(help="a trained separator")] = DEFAULT_SEPARATOR,
    out: Annotated[Path, typer.Option(help="writes OUT/<file name>/<source>.wav")] = SEPARATED,
    overlap: Annotated[float, typer.Option(help="shared fraction of neighbouring chunks")] = 0.25,
    consistent: Annotated[
        bool, typer.Option(help="share what the model left out among the sources, so they sum to the input")
    ] = False,
) -> None:
    """Separate songs into stems with a trained separator (GPU when present)."""
    from selfrefine.separate import separate_files

    if not 0 <= overlap < 1:
        typer.echo(f"error: --overlap {overlap}: expected a fraction in [0, 1)", err=True)
        raise typer.Exit(1)
    _face(separate_files, files, model, out, overlap, consistent)


@app.command()
def profile(
    name: Annotated[str, typer.Argument(help="a file in profiles/ without .yaml, e.g. paper")],
    params: ParamsOpt = PARAMS,
) -> None:
    """Apply a profile's overrides (profiles/NAME.yaml) to params.yaml, keeping its comments; validated."""
    _face(apply_profile, name, params)


def apply_profile(name: str, params: Path) -> None:
    """Merge ``profiles/<name>.yaml`` into ``params`` (comments kept), validated completely before writing."""
    import io
    import tempfile

    from ruamel.yaml import YAML, YAMLError

    from selfrefine.config import merge_into
    from selfrefine.outputs import write_text

    source = PROFILES / f"{name}.yaml"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        raise UserError(f"{source}: no such profile; available: {known}")
    yaml = YAML()  # round trip, changing only what the profile sets: quotes, nulls and long lines kept as written
    yaml.preserve_quotes, yaml.width = True, 4096
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    try:
        document, override = yaml.load(params.read_text()), yaml.load(source.read_text()) or {}
    except YAMLError as err:
        raise UserError(f"{params} or {source}: invalid YAML ({str(err).splitlines()[0]})") from None
    merge_into(document, override)
    text = io.StringIO()
    yaml.dump(document, text)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / params.name
        candidate.write_text(text.getvalue())
        try:
            check_params(candidate)
        except UserError as err:
            raise UserError(str(err).replace(str(candidate), f"{params} + {source}")) from None
    write_text(params, text.getvalue())
    log.info("profile: applied %s to %s", source, params)


def main() -> None:
    """Console entry point."""
    app(prog_name="selfrefine")


if __name__ == "__main__":
    sys.exit(main())
