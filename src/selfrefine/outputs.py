"""Atomic output writing: every file a stage writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from selfrefine.errors import FULL, UserError


def _remove_leftovers(path: Path, suffixes: list[str]) -> None:
    """Remove what a killed writer of folder ``path`` left beside it (:func:`atomic_dir`'s temporary names). A
    folder has one writer at a time (a stage's output, under DVC's lock); files (:func:`atomic_path`), which
    processes may write side by side (a shared stem cache), are left alone."""
    for suffix in suffixes:
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(suffix)}"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in FULL and not err.filename:  # a write() that found the disk full names no file: name it
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    The old folder is renamed away before the new one is renamed in, and deleted after: a process killed at any
    moment leaves ``path`` whole (old or new) or absent, never half deleted; what such a kill leaves beside
    ``path`` is removed by the next writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path, [".tmp", ".old"])
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = tmp.with_suffix(".old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.exists():
            shutil.rmtree(old)
    except OSError as err:
        if err.errno in FULL and not err.filename:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None so the JSON stays valid (and visibly empty)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path``, atomically. Serialised in memory first: a file system that fills up
    then raises ``OSError`` (ENOSPC, named by :func:`atomic_path`), where torch's own writer raises a bare
    RuntimeError. The archive is the one ``torch.save`` writes to any file object (named ``archive``), so the
    bytes do not depend on the path."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2, sort_keys=False) + "\n")


def write_npz(path: str | Path, **arrays: Any) -> None:
    """Write arrays as an ``.npz`` that ``np.load`` reads, atomically and byte-reproducibly (``np.savez``
    stamps each member with the time of writing)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())


def write_text(path: str | Path, text: str) -> None:
    """Write ``text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]) -> None:
    """Write dict rows as CSV with the given column order, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a CSV written by :func:`write_csv` into dict rows.

    Raises:
        UserError: the file is missing (the stage that writes it has not run).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run the stage that writes it first (dvc repro)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (used to fingerprint label tables and indexes)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
