"""The shipped potentials: where they live and how a name or a path becomes a checkpoint file."""

from __future__ import annotations

import os
from pathlib import Path


def potentials_dir() -> Path:
    """Folder of shipped potentials (``$MLFF_POTENTIALS`` or ``potentials/`` beside the package)."""
    return Path(os.environ.get("MLFF_POTENTIALS", Path(__file__).resolve().parents[2] / "potentials"))


def shipped_potentials() -> list[str]:
    """Names of the shipped potentials (folders with a ``model.pt``)."""
    folder = potentials_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "model.pt").is_file())


def checkpoint_path(model: str | os.PathLike) -> Path:
    """The checkpoint file for ``model``: an existing path, else a shipped potential of that name.

    A name that is neither is returned as a path, so that the checkpoint reader reports it as
    missing (its message lists the shipped potentials).
    """
    path = Path(model)
    if path.exists():
        return path
    shipped = potentials_dir() / str(model) / "model.pt"
    return shipped if shipped.is_file() else path
