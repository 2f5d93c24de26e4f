"""Datasets larger than memory: files read one frame at a time, on demand.

:class:`LazyStructures` is a sequence of labelled, validated ``Atoms`` over one file, read as they
are indexed (extxyz through a byte index built in one scan; ``.traj``; fairchem's ``.aselmdb`` and
OC20's ``.lmdb``). It holds no frame, so its memory does not grow with the file, and it pickles
without its open handles, so DataLoader workers reopen the file in their own process (LMDB handles
must not cross a fork). :class:`Concat` and :class:`Subset` join files and select splits without
reading anything; :class:`Mapped` transforms frames as they are read (adsorption-energy targets).
"""

from __future__ import annotations

import io
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.io.trajectory import Trajectory

from mlff.data.formats import canonical_labels, default_keys
from mlff.data.labels import LabelKeys
from mlff.data.lmdb import AseLmdbSource, PygLmdbSource
from mlff.data.validation import validate_atoms
from mlff.errors import DataError


class XyzSource:
    """extxyz frames by byte offset: one scan of the file, then a seek per frame. It holds no open file,
    so the index crosses into worker processes with it (they do not scan the file again)."""

    shareable = True

    def __init__(self, path: Path):
        self.path = path
        offsets, counts = [], []
        with open(path, "rb") as fh:
            position, line = 0, fh.readline()
            while line:
                if line.strip():
                    if not line.strip().isdigit():
                        raise DataError(f"{path}: expected the atom count of frame {len(offsets)} at byte {position}, "
                                        f"got {line.strip()[:40]!r}")
                    offsets.append(position)
                    counts.append(int(line))
                    for _ in range(counts[-1] + 1):
                        if not fh.readline():
                            raise DataError(f"{path} is truncated: frame {len(offsets) - 1} declares {counts[-1]} atoms")
                position = fh.tell()
                line = fh.readline()
        self.offsets, self.counts = np.array(offsets, dtype=np.int64), np.array(counts, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, k: int) -> Atoms:
        with open(self.path, "rb") as fh:
            fh.seek(int(self.offsets[k]))
            text = b"".join(fh.readline() for _ in range(int(self.counts[k]) + 2)).decode()
        try:
            return ase.io.read(io.StringIO(text), format="extxyz")
        except Exception as err:  # noqa: BLE001 - any parse failure, with its location
            raise DataError(f"frame {k} of {self.path} cannot be parsed: {err}") from None

    def close(self) -> None:
        pass


class TrajSource:
    shareable = False  # an open file

    def __init__(self, path: Path):
        self.path = path
        try:
            self.traj = Trajectory(str(path))
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{path} is not a readable ASE trajectory: {err}") from None

    def __len__(self) -> int:
        return len(self.traj)

    def read(self, k: int) -> Atoms:
        try:
            return self.traj[k]
        except Exception as err:  # noqa: BLE001
            raise DataError(f"frame {k} of {self.path} cannot be read (corrupt?): {err}") from None

    def close(self) -> None:
        self.traj.close()


SOURCES = {".extxyz": XyzSource, ".xyz": XyzSource, ".traj": TrajSource, ".aselmdb": AseLmdbSource,
           ".lmdb": PygLmdbSource}


class Frames(Sequence):
    """A sequence read item by item through ``_item(k)``, ``0 <= k < len``: negative indices count from
    the end, an index out of range is an IndexError, and a slice selects without reading (a :class:`Subset`)."""

    def __getitem__(self, k):
        if isinstance(k, slice):
            return Subset(self, range(len(self))[k])
        return self._item(range(len(self))[k])

    @abstractmethod
    def _item(self, k: int):
        """Item ``k``, ``0 <= k < len(self)``."""


class LazyStructures(Frames):
    """The frames of ``path`` as labelled structures, read when indexed (see the module docstring)."""

    def __init__(self, path, keys: LabelKeys = LabelKeys(), require: Sequence[str] = ("energy",), validate=True):
        self.path = Path(path)
        if self.path.suffix.lower() not in SOURCES:
            raise DataError(f"{self.path}: no lazy reader for {self.path.suffix!r} (there are: {', '.join(SOURCES)}); "
                            "read it into memory instead")
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        self.keys, self.require, self.validate = default_keys(self.path, keys), tuple(require), validate
        self._source, self._pid = None, None
        self._length = len(self.source)

    @property
    def source(self):
        if self._source is None or (self._pid != os.getpid() and not self._source.shareable):
            self._source, self._pid = SOURCES[self.path.suffix.lower()](self.path), os.getpid()  # again per process
        return self._source

    def close(self) -> None:
        """Close this reader's open ``.traj`` file, if any (indexing again reopens it). An extxyz index
        holds no file and is kept; LMDB handles are shared per file and process and stay open until exit."""
        if self._source is not None and not self._source.shareable:
            self._source.close()
            self._source = None

    def __len__(self) -> int:
        return self._length

    def _item(self, k: int) -> Atoms:
        where = f"frame {k} of {self.path}"
        atoms = self.source.read(k)
        canonical_labels(atoms, self.keys, self.require, where)
        if self.validate:
            validate_atoms(atoms, where=where)
        return atoms

    def __getstate__(self) -> dict:  # open handles stay behind; an extxyz index travels
        keep = self._source is not None and self._source.shareable
        return {**self.__dict__, "_source": self._source if keep else None, "_pid": self._pid if keep else None}


class Concat(Frames):
    """Several sequences one after another."""

    def __init__(self, parts: Sequence[Sequence[Atoms]]):
        self.parts = list(parts)
        self.ends = np.cumsum([len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def _item(self, k: int):
        part = int(np.searchsorted(self.ends, k, side="right"))
        return self.parts[part][k - (int(self.ends[part - 1]) if part else 0)]


class Subset(Frames):
    """The items of ``base`` at ``indices``, in that order."""

    def __init__(self, base: Sequence[Atoms], indices):
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):  # a subset of the base, not of this subset
            return Subset(self.base, self.indices[k])
        return super().__getitem__(k)

    def _item(self, k: int):
        return self.base[int(self.indices[k])]


class Mapped(Frames):
    """``transform(frame, where)`` applied to each frame of ``base`` as it is read."""

    def __init__(self, base: LazyStructures, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def _item(self, k: int):
        return self.transform(self.base[k], f"frame {k} of {self.base.path}")
