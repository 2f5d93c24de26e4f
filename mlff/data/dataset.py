"""Train/validation/test splits and a torch ``Dataset`` of :class:`~mlff.data.graph.AtomicGraph`."""

from __future__ import annotations

import numbers
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from torch.utils.data import Dataset

from mlff.data.graph import AtomicGraph, collate
from mlff.data.validation import validate_atoms
from mlff.errors import ConfigError, DataError
from mlff.fileio import atomic_write

SPLITS = ("train", "val", "test")


def make_splits(n: int, val: float | int, test: float | int, seed: int) -> dict[str, np.ndarray]:
    """Randomly split ``range(n)`` into disjoint, sorted ``train``/``val``/``test`` index arrays.

    ``val`` and ``test`` are sizes as :func:`split_size` reads them: fractions of ``n`` (rounded to
    whole structures) or counts. Everything left is ``train``, which must not be empty. The same
    ``seed`` always gives the same split.
    """
    if n < 1:
        raise ConfigError(f"cannot split {n} structures")
    n_val, n_test = (_count(split_size(size, name), n) for size, name in ((val, "val"), (test, "test")))
    if n_val + n_test >= n:
        raise ConfigError(f"val ({n_val}) + test ({n_test}) leave no training structures out of {n}")
    perm = np.random.default_rng(seed).permutation(n)
    parts = {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
    return {name: np.sort(parts[name]) for name in SPLITS}


def split_size(size, name: str) -> int | float:
    """``size`` of split ``name`` as a count (int) or a fraction (float in [0, 1)).

    A fraction is a number in [0, 1); a count is an int >= 0 or a float that is a whole number >= 1
    (YAML and the command line may give ``5.0``). Anything else, e.g. ``1.5``, is a ConfigError.
    """
    if not isinstance(size, bool) and isinstance(size, numbers.Real):
        if isinstance(size, numbers.Integral) and size >= 0:
            return int(size)
        if 0 <= size < 1:
            return float(size)
        if size >= 1 and float(size).is_integer():
            return int(size)
    raise ConfigError(f"{name} must be a fraction in [0, 1) or a whole count of structures, got {size!r}")


def _count(size: int | float, n: int) -> int:
    return size if isinstance(size, int) else int(round(size * n))


def save_splits(directory, splits: dict[str, Sequence[int]]) -> None:
    """Write ``<directory>/<name>.idx`` for every split: one integer index per line, atomically."""
    for name, indices in splits.items():
        with atomic_write(Path(directory) / f"{name}.idx") as fh:
            fh.write("".join(f"{int(i)}\n" for i in indices))


def load_splits(directory, n: int | None = None) -> dict[str, np.ndarray]:
    """Read ``train.idx``, ``val.idx`` and ``test.idx`` from ``directory``.

    Raises :class:`DataError` for a missing file, a line that is not a non-negative integer, an
    index listed twice, or (given the dataset size ``n``) an index ``>= n``.
    """
    splits, owner = {}, {}
    for name in SPLITS:
        path = Path(directory) / f"{name}.idx"
        if not path.is_file():
            raise DataError(f"{path}: no such split file (expected {', '.join(s + '.idx' for s in SPLITS)})")
        indices = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            where = f"line {lineno} of {path}"
            if not line.strip():
                continue
            if not line.strip().isdecimal():
                raise DataError(f"{where}: expected a non-negative integer, got {line!r}")
            index = int(line)
            if index in owner:
                raise DataError(f"{where}: index {index} is already in split {owner[index]!r}")
            if n is not None and index >= n:
                raise DataError(f"{where}: index {index} is out of range for {n} structures")
            owner[index] = name
            indices.append(index)
        splits[name] = np.asarray(indices, dtype=np.int64)
    return splits


class GraphDataset(Dataset):
    """Structures as :class:`AtomicGraph` objects, built on first access and cached.

    Use ``DataLoader(dataset, batch_size=..., collate_fn=GraphDataset.collate)``. Each DataLoader
    worker process keeps its own cache. ``dtype`` defaults to torch's default dtype at construction.
    ``structures`` may be any sequence, e.g. a :class:`mlff.data.lazy.LazyStructures` that reads
    frames on demand; with ``cache=False`` graphs are built at each access and never kept, so the
    memory does not grow with the dataset. ``validate=False`` skips :func:`validate_atoms` for
    structures already validated where they were read (``read_structures``, ``LazyStructures``).
    """

    def __init__(self, structures: Sequence[Atoms], cutoff: float, dtype: torch.dtype | None = None,
                 cache: bool = True, validate: bool = True):
        if cutoff <= 0:
            raise ConfigError(f"cutoff must be positive, got {cutoff}")
        self.structures = structures if isinstance(structures, Sequence) else list(structures)
        self.cutoff = float(cutoff)
        self.dtype = dtype or torch.get_default_dtype()
        self.cache, self.validate = cache, validate
        self._cache: dict[int, AtomicGraph] = {}

    def __len__(self) -> int:
        return len(self.structures)

    def __getitem__(self, index: int) -> AtomicGraph:
        index = range(len(self))[index]  # negative indices; IndexError when out of range
        if index in self._cache:
            return self._cache[index]
        atoms = self.structures[index]
        if self.validate:
            validate_atoms(atoms, where=f"structure {index} of the dataset")
        graph = AtomicGraph.from_atoms(atoms, self.cutoff, dtype=self.dtype, validate=False)
        if self.cache:
            self._cache[index] = graph
        return graph

    @staticmethod
    def collate(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
        """Batch graphs for a DataLoader; never hands out a cached graph object itself."""
        return replace(collate(graphs))

    def subset(self, indices: Sequence[int]) -> "GraphDataset":
        """A dataset of the structures at ``indices`` (in that order), sharing already-built graphs."""
        indices = [range(len(self))[int(i)] for i in indices]
        sub = GraphDataset([self.structures[i] for i in indices], self.cutoff, self.dtype, self.cache, self.validate)
        sub._cache = {new: self._cache[old] for new, old in enumerate(indices) if old in self._cache}
        return sub
