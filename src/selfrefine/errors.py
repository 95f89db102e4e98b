"""The one error type for bad input: the CLI prints its one-line message and exits 1, no traceback."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)
"""The errnos of a write that found its file system (or the user's quota) full."""


class UserError(ValueError):
    """Bad input (params, audio, dataset, command use); the message is one line naming it and the fix."""


def _mount(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def disk_full(err: OSError, folders: Iterable[Path] = ()) -> str | None:
    """One line for a write that found its file system full: the file (or, when the error names none, the
    fullest of ``folders``), its mount point and what is free there. ``None`` for any other error."""
    if err.errno not in FULL:
        return None
    if err.filename:
        where = Path(os.fsdecode(err.filename))
    else:
        candidates = [Path(f) for f in folders]
        if not candidates:
            return "no space left on the device; free space and rerun"
        where = min(candidates, key=lambda f: shutil.disk_usage(_mount(f)).free)
    mount = _mount(where)
    free = shutil.disk_usage(mount).free / 2**20
    return (
        f"no space left on the device writing {where} ({mount}: {free:.0f} MiB free once the unfinished file was "
        "removed); free space there, or point the output elsewhere (the stem cache: SELFREFINE_CACHE), and rerun"
    )
