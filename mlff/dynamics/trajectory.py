"""Trajectory output that never damages an existing file.

Frames are appended, each one whole and flushed, to a hidden partial file beside the target.
``close()`` renames it over the target, so the target is replaced only by a finished trajectory,
and a run stopped by the guard still delivers every good frame it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import ase.io
from ase import Atoms
from ase.io.trajectory import Trajectory

FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".traj": "traj"}


class TrajectoryWriter:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.format = FORMATS.get(self.path.suffix)
        if self.format is None:
            raise ValueError(f"trajectory {self.path}: use one of {', '.join(FORMATS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.partial{self.path.suffix}")
        self.frames = 0
        if self.format == "traj":
            self._handle = Trajectory(str(self.partial), "w")
        else:
            self._handle = open(self.partial, "w")

    def write(self, atoms: Atoms) -> None:
        if self.format == "traj":
            self._handle.write(atoms)
        else:
            ase.io.write(self._handle, atoms, format="extxyz")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self.frames += 1

    def close(self) -> Path:
        self._handle.close()
        os.replace(self.partial, self.path)
        return self.path

    def abandon(self) -> Path:
        """After a crash: keep the target as it was; the frames written stay in the partial file."""
        self._handle.close()
        return self.partial
