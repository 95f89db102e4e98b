"""A batch of DVC experiments run through the queue, resumable: the machinery of ``compare`` and ``study``.

Each experiment is queued by name (``dvc exp run --queue -S ... --name NAME TARGETS``) and the queue is run
with ``dvc queue start -j JOBS``; each experiment restores every stage it shares with earlier runs from
DVC's run cache, so only what its params change reruns. A batch is named by a stamp: running the same
batch again queues only the experiments that have not finished (a finished one is found in any commit's
experiments), which is how an interrupted comparison or study resumes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Hashable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from selfrefine import paths
from selfrefine.errors import UserError

log = logging.getLogger(__name__)


class DvcError(UserError):
    """A dvc command failed; the message is its last line of output."""


#: Seconds a dvc command may take before it counts as failed (and is killed): a ``dvc exp show`` was seen to
#: block forever on a futex (while queue workers ran, and in the study test's repository); the batch's polling
#: loop then asks again. Answers take seconds, so 5 min bounds what a hang costs; ``SELFREFINE_DVC_TIMEOUT``
#: (seconds) sets another bound (the end-to-end tests use 60 s on their small repositories).
DVC_TIMEOUT = float(os.environ.get("SELFREFINE_DVC_TIMEOUT", "300"))


def dvc(*args: str) -> str:
    """Run a dvc command, return its output; a failure or no answer in :data:`DVC_TIMEOUT` is a :class:`DvcError`.

    ``dvc queue start`` forks a worker that outlives the command; its output goes to files, not to
    our pipes, which would otherwise stay open until the worker exits.
    """
    if args[:2] == ("queue", "start"):
        jobs = int(args[args.index("-j") + 1]) if "-j" in args else 1
        proc = subprocess.run(
            ["dvc", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **worker_threads(jobs)},
        )
        if proc.returncode != 0:
            raise DvcError(f"dvc {' '.join(args)} failed with exit code {proc.returncode}")
        return ""
    try:
        proc = subprocess.run(["dvc", *args], capture_output=True, text=True, timeout=DVC_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DvcError(f"dvc {' '.join(args)} did not answer in {DVC_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DvcError(f"dvc {' '.join(args)} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc.stdout


def worker_threads(jobs: int, cpus: int | None = None) -> dict[str, str]:
    """The thread settings of ``jobs`` queue workers side by side (inherited by their stages): each worker's torch
    gets its share of the ``cpus`` cores, so that two workers do not run 2 x all-cores threads on them. One worker
    (and a user's own ``OMP_NUM_THREADS``) keeps torch's default."""
    if jobs <= 1 or "OMP_NUM_THREADS" in os.environ:
        return {}
    share = str(max(1, (cpus or os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}


def _nodes(tree: Any) -> Iterator[dict]:
    """Every dict node of a ``dvc exp show --json`` tree, depth first."""
    if isinstance(tree, dict):
        yield tree
        children = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return
    for child in children:
        yield from _nodes(child)


def find_experiment(node: Any, name: str) -> dict | None:
    """The ``dvc exp show --json`` node of experiment ``name`` (``rev``, ``data``), searched recursively."""
    return next((n for n in _nodes(node) if n.get("name") == name and isinstance(n.get("data"), dict)), None)


def slug(text: str) -> str:
    """``text`` in a form git accepts in a ref (experiment names)."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def batch_times(found: Mapping[Hashable, dict], queued: datetime, jobs: int, earlier: Mapping | None = None) -> dict:
    """When a batch was queued, when its last experiment finished, the minutes between (its wall time), and what it
    ran on: ``jobs`` queue workers on this machine's ``cpus`` cores. ``earlier``: the record of the same batch from
    a run before this one, whose workers and cores it keeps: those it was started with. A batch that grew after
    that record (resumed, or extended with more seeds) is marked ``resumed``: its minutes then include the time
    between the runs and are not its wall time."""
    stamps = [node["data"]["timestamp"] for node in found.values() if node["data"].get("timestamp")]
    last = max(map(datetime.fromisoformat, stamps), default=datetime.now())
    started = earlier if earlier and "jobs" in earlier else {"jobs": jobs, "cpus": os.cpu_count()}
    resumed = bool(earlier) and (earlier.get("resumed") or earlier.get("experiments") != len(found))
    return {
        "queued": queued.isoformat(),
        "last_finished": last.isoformat(),
        "minutes": round((last - queued).total_seconds() / 60, 1),
        "jobs": started["jobs"],
        "cpus": started["cpus"],
        **({"resumed": True} if resumed else {}),
    }


def stamp_time(stamp: str) -> datetime:
    """The time a batch stamp (``YYYYmmdd-HHMMSS``) names; a malformed stamp is a one-line error."""
    try:
        return datetime.strptime(stamp, "%Y%m%d-%H%M%S")
    except ValueError:
        raise UserError(
            f"--stamp {stamp!r}: expected YYYYmmdd-HHMMSS, as in an earlier batch's experiment names"
        ) from None


def queue_status(names: Mapping[Hashable, str], text: str | None = None) -> dict[Hashable, str]:
    """Status word (Queued, Running, Success, Failed, ...) of each of our experiments in ``dvc queue status`` (its
    output ``text``, asked for where not given)."""
    lines = (dvc("queue", "status") if text is None else text).splitlines()
    return {key: line.split()[-1] for key, exp in names.items() for line in lines if exp in line.split()}


def live_workers(text: str) -> int:
    """The queue workers alive (active or idle), from ``dvc queue status``'s last line (``Worker status: N active, M idle``)."""
    found = re.search(r"Worker status: (\d+) active, (\d+) idle", text)
    return int(found[1]) + int(found[2]) if found else 0


def finished(names: Mapping[Hashable, str], required: list[str], status: Mapping[Hashable, str]) -> dict:
    """The ``dvc exp show`` nodes (``rev``, ``data``) of our finished experiments that hold every ``required`` metric.

    An experiment still queued or running is never read: ``dvc exp show`` already lists it, with the metrics
    files its checkout of the baseline commit holds (the committed run's), not its own (``status``: see
    :func:`queue_status`). All commits are searched: a batch resumed after new commits still finds its
    experiments.
    """
    busy = {key for key, word in status.items() if word in ("Queued", "Running")}
    shown = json.loads(dvc("exp", "show", "--json", "--all-commits"))
    # `dvc queue status` can miss a task as it moves from queued to running: the executor state that
    # `dvc exp show` gives beside the experiment decides too (its checkout holds the baseline's metrics)
    unfinished = _unfinished(shown)
    busy |= {key for key, exp in names.items() if exp in unfinished}
    found = {}
    for key, exp in names.items():
        if key in busy:
            continue
        node = find_experiment(shown, exp)
        if node is not None and all(path in node["data"].get("metrics", {}) for path in required):
            found[key] = node
    return found


def output(rev: str, path: Path) -> str:
    """A DVC output of an experiment's commit (a stage's report or label table), read from DVC's cache."""
    import dvc.api

    try:
        return dvc.api.read(path.as_posix(), rev=rev)
    except Exception as err:  # dvc raises many kinds; each means the output is not in this checkout's cache
        raise DvcError(f"experiment {rev[:7]}: cannot read {path} ({err}); run it again") from None


SEED_KEYS = {"pipeline": "seed", "separators": "separate.seed"}
"""The param a run's seed sets, per ``compare.vary`` / ``study.vary``: ``seed`` replicates the whole pipeline
(noise draw, classifiers, separators; the songs keep ``generate.seed``), ``separate.seed`` the separators alone."""


def song_scores(rev: str, model: str) -> list[dict]:
    """An experiment's per-song, per-source scores of separator ``model`` (``plots/separation/``, a DVC output)."""
    return list(csv.DictReader(io.StringIO(output(rev, paths.separation_plots(model) / "songs.csv"))))


def run_batch(
    names: Mapping[Hashable, str],
    args: Mapping[Hashable, list[str]],
    required: list[str],
    jobs: int,
    resume: str,
    poll_seconds: float = 15.0,
    refusals: dict | None = None,
) -> dict:
    """Queue the experiments of ``names`` that have not finished, run the queue, wait for all of them.

    Args:
        names: experiment name per key (names carry the batch's stamp).
        args: per key, the ``dvc exp run`` arguments after ``--queue`` and before ``--name``: ``-S`` pairs and
            the targets.
        required: metrics paths every finished experiment holds (what marks it done).
        jobs: queue workers (``dvc queue start -j``).
        resume: the command that resumes this batch, named in the error when an experiment fails.
        poll_seconds: how often the queue is checked.
        refusals: when given, an experiment whose stage refused its input (its log's one ``error:`` line,
            no traceback: e.g. a label table that leaves a source no training stem) is a result, not a
            failure: its reason goes into ``refusals[key]``, the batch waits for the rest, and a resumed batch
            does not queue it again. Any other failure still raises.

    Returns:
        ``{key: dvc exp show node}`` of every experiment that finished (all of them, but those in ``refusals``).
    """
    if not names:
        return {}
    status = queue_status(names)
    found = finished(names, required, status)
    _refused(names, status, refusals)
    pending = {key: exp for key, exp in names.items() if key not in found and key not in (refusals or {})}
    if pending:
        for key, exp in pending.items():
            if status.get(key) not in ("Queued", "Running"):
                dvc("exp", "run", "--queue", *args[key], "--name", exp)
                log.info("queued %s", exp)
        dvc("queue", "start", "-j", str(jobs))
        log.info("running %d experiments in the DVC queue (`dvc queue status` shows them)", len(pending))
    misses = 0
    while len(found) + len(refusals or {}) < len(names):
        time.sleep(poll_seconds)
        text = dvc("queue", "status")
        status = queue_status(names, text)
        _refused(names, status, refusals)
        failed = [names[key] for key, word in status.items() if word == "Failed" and key not in (refusals or {})]
        if failed and not any(word in ("Queued", "Running") for word in status.values()):
            raise DvcError(
                f"{len(failed)} of {len(names)} experiments failed:\n"
                + "\n".join(f"  {name}: {failure(name)} (`dvc queue logs {name}`)" for name in failed)
                + f"\nFix the cause, then: {resume}"
            )
        if any(word == "Queued" for word in status.values()) and live_workers(text) < jobs:
            # a worker can exit with work left in the queue (e.g. kombu's file broker reading a message while
            # another `dvc exp run --queue` writes it); start the missing ones, not only when none is left
            dvc("queue", "start", "-j", str(jobs))
        try:
            found = finished(names, required, status)
            misses = 0
        except DvcError as err:  # `dvc exp show` can fail while a worker holds the repository; ask again
            misses += 1
            if misses >= 20:
                raise
            log.info("%s; asking again", err)
    return found


_TRACEBACK = "Traceback (most recent call last)"


def _stage_errors(log_text: str) -> list[str]:
    """The one-line ``error:`` messages our stages print (:class:`selfrefine.errors.UserError`), in a log's order."""
    return [line.strip() for line in log_text.splitlines() if line.startswith("error:")]


def failure(name: str) -> str:
    """Why experiment ``name`` failed, in one line from its log: a crash's exception, else a stage's one-line
    ``error:``, else DVC's own ``ERROR:`` line."""
    try:
        text = dvc("queue", "logs", name)
    except DvcError as err:
        return str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = _stage_errors(text)
    crash = [line for line in lines if re.match(r"[\w.]+(Error|Exception|Interrupt): ", line)]
    theirs = [line for line in lines if line.startswith("ERROR:")]
    order = (crash, ours) if _TRACEBACK in text else (ours, crash)
    return next((group[-1] for group in (*order, theirs, lines) if group), "no log")


def tracked_roots(roots: list[str]) -> None:
    """Stop with one line, before anything is queued, when a data root inside the repository is tracked by neither
    git nor DVC: queued experiments run in a copy of the repository that holds only tracked files.

    A root outside the repository (an absolute path) is read where it is and needs no tracking; a root a stage
    writes (the embedded default's ``data/generated``) is a DVC output.
    """
    import yaml

    repository = Path.cwd().resolve()
    stages = yaml.safe_load(paths.DVC_YAML.read_text())["stages"] if paths.DVC_YAML.is_file() else {}
    produced = [Path(o) for stage in stages.values() for o in stage.get("outs", []) if isinstance(o, str)]
    for root in dict.fromkeys(roots):
        path = Path(root)
        if path.is_absolute() and not path.resolve().is_relative_to(repository):
            continue
        relative = path.resolve().relative_to(repository) if path.is_absolute() else path
        if any(relative == p or p in relative.parents for p in produced):
            continue
        if any((parent.parent / f"{parent.name}.dvc").is_file() for parent in [relative, *relative.parents]):
            continue
        listed = subprocess.run(["git", "ls-files", "--", relative.as_posix()], capture_output=True, text=True)
        if listed.stdout.strip():
            continue
        raise UserError(
            f"{root}: tracked by neither git nor DVC, and queued experiments see only tracked files; track it first "
            f"(`dvc add {relative} && git add {relative}.dvc && git commit -m 'track the data'`), or set the data "
            "roots to absolute paths outside the repository"
        )


def refusal(name: str) -> str | None:
    """Why experiment ``name`` failed, when a stage refused its input: the one ``error:`` line our stages print
    (``selfrefine.errors.UserError``), provided its log holds no traceback (a crash is never a refusal)."""
    log_text = dvc("queue", "logs", name)
    if _TRACEBACK in log_text:
        return None
    lines = [line.removeprefix("error: ") for line in _stage_errors(log_text) if line.startswith("error: ")]
    return lines[-1] if lines else None


def _refused(names: Mapping[Hashable, str], status: Mapping[Hashable, str], refusals: dict | None) -> None:
    """Record in ``refusals`` the failed experiments of ``names`` that a stage refused (see :func:`refusal`)."""
    if refusals is None:
        return
    for key, word in status.items():
        if word == "Failed" and key not in refusals:
            reason = refusal(names[key])
            if reason is not None:
                refusals[key] = reason


def _unfinished(tree: Any) -> set[str]:
    """Names of the experiments whose executor, in ``dvc exp show --json``, is not done (queued, running)."""
    return {
        n["name"]
        for n in _nodes(tree)
        if isinstance(n.get("executor"), dict)
        and n["executor"].get("state") not in (None, "success", "failed")
        and n.get("name")
    }
