"""DVC's own files that a killed ``dvc`` command can leave cut short, and the remedy for each.

DVC writes ``dvc.lock`` and its read-write lock ``.dvc/tmp/rwlock`` in place, not beside and renamed: the kill
drill (``benchmarks/drill_runs.py``) cut ``dvc.lock`` short 5 times and the rwlock once in 320 kills. Until they
are repaired every ``dvc`` command fails with DVC's own error (``'./dvc.lock' validation failed``, or
``Unable to read RWLock-file``, treeverse/dvc#7615). ``selfrefine check`` names the file and the remedy in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def lock_damaged(root: Path) -> str | None:
    """Why ``root/dvc.lock`` no longer loads as DVC loads it (YAML, then DVC's lock-file schema); ``None`` when it
    does or is absent."""
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA

    path = root / "dvc.lock"
    if not path.is_file():
        return None
    try:
        COMPILED_LOCKFILE_SCHEMA(yaml.safe_load(path.read_text()))
    except Exception as err:  # a truncated file: YAML errors, schema errors, a None document
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
    return None


def rwlock_damaged(root: Path) -> str | None:
    """Why DVC's read-write lock ``root/.dvc/tmp/rwlock`` (JSON) no longer parses; ``None`` when it does or is
    absent."""
    path = root / ".dvc" / "tmp" / "rwlock"
    if not path.is_file():
        return None
    try:
        json.loads(path.read_text() or "{}")
    except ValueError as err:
        return f"{type(err).__name__}: {err}"[:200]
    return None


def damaged(root: Path = Path(".")) -> list[str]:
    """One line per damaged DVC file under ``root``: the file, what is wrong and the remedy."""
    lines = []
    if lock_damaged(root):
        lines.append(
            f"{root / 'dvc.lock'}: cut short (a killed dvc command writes it in place); restore it with "
            "`git checkout dvc.lock`, then `dvc repro` reruns what the restored file does not cover"
        )
    if rwlock_damaged(root):
        lines.append(
            f"{root / '.dvc/tmp/rwlock'}: cut short by a killed dvc command (treeverse/dvc#7615); with no dvc "
            "command running, remove it"
        )
    return lines
