"""What the experiment faces share when they report: kept scores, intervals as text, names, batches, sections.

- The kept per-song scores (:data:`SCORE_COLUMNS`, :func:`song_matrix`): the one input of every interval.
- Intervals and shares as text (:func:`ci_text`, :func:`pct_text`, :func:`share_text`).
- Condition names as people read them (:func:`display`): a condition's alias from ``compare.aliases``.
- A batch's wall time as it was measured (:func:`batch_text`): the queue workers and CPU cores it ran with are
  stated only when the batch recorded them.
- Generated sections of the README and ``docs/`` (:func:`update_section`), between ``<!-- NAME:start -->`` and
  ``<!-- NAME:end -->`` markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from selfrefine import CLASSES
from selfrefine.errors import UserError
from selfrefine.outputs import write_text

SCORE_COLUMNS = ["labels", "seed", "song", "source", "global_sdr", "sdr", "vary"]
"""One kept score: a condition's run ``seed`` on one test song and source (global SDR, BSSEval SDR), and what the
run's seed set (``vary``: ``pipeline`` or ``separators``)."""


def score_row(labels: str, seed: int, scored: dict, vary: str) -> dict:
    """One kept score (:data:`SCORE_COLUMNS`) from an experiment's per-song, per-source row ``scored``."""
    return {"labels": labels, "seed": seed, **{k: scored[k] for k in SCORE_COLUMNS[2:-1]}, "vary": vary}


def song_matrix(
    rows: list[dict], labels: str, value: str = "global_sdr", sources: tuple[str, ...] = CLASSES
) -> tuple[np.ndarray, list[int], list[str]]:
    """``(seeds, songs)`` mean-over-``sources`` scores of one condition, seeds and songs sorted."""
    mine = [r for r in rows if r["labels"] == labels and r["source"] in sources]
    seeds = sorted({int(r["seed"]) for r in mine})
    songs = sorted({r["song"] for r in mine})
    cells: dict[tuple[int, str], list[float]] = {}
    for r in mine:
        cells.setdefault((int(r["seed"]), r["song"]), []).append(float(r[value]))
    missing = [(k, s) for k in seeds for s in songs if len(cells.get((k, s), [])) != len(sources)]
    if missing:
        raise UserError(f"{labels}: seed {missing[0][0]}, song {missing[0][1]} lacks a source score; rerun it")
    return np.array([[np.mean(cells[(k, s)]) for s in songs] for k in seeds]), seeds, songs


def ci_text(value: dict, scale: float = 1.0, unit: str = "") -> str:
    """``mean [low, high]`` of an interval, to 2 decimals."""
    return f"{scale * value['mean']:.2f}{unit} [{scale * value['ci_low']:.2f}, {scale * value['ci_high']:.2f}]"


def pct_text(value: dict) -> str:
    """An interval of a share as ``mean % [low, high]``, whole percents; ``undefined`` where it has no bounds (a
    Fieller interval whose denominator's interval includes 0)."""
    if value.get("undefined"):
        return f"{100 * value['mean']:.0f} % [undefined: clean − noisy includes 0]"
    return f"{100 * value['mean']:.0f} % [{100 * value['ci_low']:.0f}, {100 * value['ci_high']:.0f}]"


def share_text(x: float | None) -> str:
    """A share as ``12.3 %`` (empty when unknown)."""
    return "" if x is None else f"{100 * x:.1f} %"


def display(condition: str, aliases: Mapping[str, str]) -> str:
    """The name a table or plot shows for ``condition``: its alias (``compare.aliases``) when it has one."""
    return next((alias for alias, full in aliases.items() if full == condition), condition)


def batch_text(batch: dict) -> str:
    """One batch's wall time in words, stating only what the batch recorded.

    ``batch`` holds ``experiments``, ``queued``, ``last_finished``, ``minutes`` and, for batches run since they
    were recorded, ``jobs`` (queue workers) and ``cpus`` (the machine's CPU cores).
    """
    ran = (
        f"{batch['experiments']} experiments queued at {batch['queued']}, the last finished at {batch['last_finished']}"
    )
    how = [f"{batch['jobs']} queue worker(s)"] if "jobs" in batch else []
    how += [f"{batch['cpus']} CPU cores"] if "cpus" in batch else []
    span = (
        f"{batch['minutes']} min, a span that includes the time between its runs (resumed), not its wall time"
        if batch.get("resumed")
        else f"{batch['minutes']} min"
    )
    return f"{ran}: {span}" + (f" ({', '.join(how)})" if how else "") + "."


def update_section(document: Path, section: str, text: str) -> None:
    """Replace what stands between ``document``'s ``<!-- section:start -->`` and ``<!-- section:end -->``."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    content = document.read_text() if document.is_file() else ""
    if start not in content or end not in content:
        raise UserError(f"{document}: no '{start}' ... '{end}' markers to write the {section} section between")
    head, rest = content.split(start, 1)
    write_text(document, head + start + "\n" + text + rest[rest.index(end) :])
