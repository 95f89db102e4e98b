"""What every stage shares: its command line, one-line errors and its timing record."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selfrefine import distributed, paths
from selfrefine.config import load_params
from selfrefine.errors import UserError, disk_full
from selfrefine.outputs import write_json

Body = Callable[..., dict[str, float] | None]
"""A stage body: ``(params, *args) -> {timing detail: seconds}`` (or None)."""


def run_stage(stage: str, body: Body, params_path: str | Path, *args: str) -> int:
    """Run a stage body; bad input becomes one ``error:`` line and exit code 1.

    The stage's wall time, its peak resident memory (and the details its body returns) go to
    ``timings/<stage>.json``, never to a model or metrics file, so those are identical from run to run.
    """
    level = logging.INFO if distributed.is_main() else logging.WARNING  # one rank reports progress
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    began = time.perf_counter()
    try:
        details = body(load_params(params_path), *args) or {}
    except UserError as err:
        distributed.stop(wait=False)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        distributed.stop(wait=False)
        full = disk_full(err, [Path.cwd(), paths.stem_cache(), Path(tempfile.gettempdir())])
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return 1
    except BaseException:
        distributed.stop(wait=False)
        raise
    distributed.stop()
    seconds = time.perf_counter() - began
    if not distributed.is_main():
        return 0
    write_json(
        paths.timing(stage),
        {
            "stage": stage,
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **{k: round(v, 2) for k, v in details.items()},
        },
    )
    return 0


def main(body: Body, *args: tuple[str, str], ranks: bool = False) -> None:
    """Command line of a stage module: ``python -m selfrefine.stages.<name> [ARGS] [--params FILE]``.

    Args:
        body: the stage body.
        args: ``(name, help)`` of each positional argument; the first one names the stage instance
            (``classify@1`` writes ``timings/classify_1.json``).
        ranks: the stage trains, and takes ``--nproc N``: with N > 1 it hands itself to torch's launcher
            (``torch.distributed.run --standalone --nproc_per_node N``), which runs it as N ranks.
    """
    file = Path(inspect.getfile(body))  # run with -m, the body's module is __main__: its file names the stage
    parser = argparse.ArgumentParser(
        prog=f"python -m selfrefine.stages.{file.stem}",
        description=(inspect.getmodule(body).__doc__ or "").split("\n")[0],
    )
    for name, text in args:
        parser.add_argument(name, help=text)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    if ranks:
        parser.add_argument(
            "--nproc",
            type=int,
            default=1,
            help="training processes on this machine (launch.nproc): 1 runs here; N > 1 runs N ranks with torchrun "
            "(one per GPU; gloo on CPUs)",
        )
    ns = parser.parse_args()
    values = [getattr(ns, name) for name, _ in args]
    if ranks and ns.nproc > 1 and "LOCAL_RANK" not in os.environ:
        sys.exit(torchrun(ns.nproc, f"selfrefine.stages.{file.stem}", [*values, "--params", str(ns.params)]))
    stage = "_".join([file.stem, *values[:1]])
    sys.exit(run_stage(stage, body, ns.params, *values))


def torchrun(nproc: int, module: str, argv: list[str]) -> int:
    """Run ``python -m module argv`` as ``nproc`` ranks with torch's launcher; its exit code."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc_per_node={nproc}", "--module", module, *argv])
    except ChildFailedError:
        return 1  # the failing rank has printed its one-line error
    return 0
