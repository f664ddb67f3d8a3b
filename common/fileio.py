"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; if the block succeeds, rename it over ``path``.

    The temporary file is removed in every case, so an interrupted write leaves the old file
    (or nothing) in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)          # mkstemp's 0600 would make results unreadable to others
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class UserError(Exception):
    """Bad input a user can fix (a missing dataset file, a damaged checkpoint, an unusable --device):
    every script prints it as one ``error:`` line and exits with status 2, deleting nothing."""
