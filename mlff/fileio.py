"""Atomic file writing: a crash mid-write never leaves a half-written file in place of a good one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _default_mode(fd_or_path) -> None:
    """Give a temporary file the permissions a normal ``open`` would (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, 0o666 & ~umask)
    else:
        os.chmod(fd_or_path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Open a temporary file next to ``path``; on success, rename it over ``path``.

    If the body raises, the temporary file is removed and ``path`` keeps its old content.
    Usage::

        with atomic_write("out.xyz") as fh:
            fh.write(...)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    _default_mode(fd)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path`` for libraries that write by file name.

    The temporary file keeps ``path``'s suffix (so format detection works) and is renamed over
    ``path`` only if the body finishes without an exception.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    _default_mode(fd)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
