"""Checks that a structure is physically usable, with errors that say what and where."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from mlff.errors import StructureError

MIN_DISTANCE = 0.1  # Å; closer atoms are treated as a broken structure


def validate_atoms(atoms: Atoms, where: str = "", species: Iterable[int] | None = None) -> None:
    """Raise :class:`StructureError` if ``atoms`` cannot be turned into a sensible graph.

    ``where`` names the structure in the message (for example ``"frame 3 of data.xyz"``).
    Checked: not an ``ase.Atoms``, empty structure, unknown atomic numbers (or, given ``species``,
    elements a model does not know), NaN or infinite positions or cell, a singular cell along
    periodic directions, and atoms closer than 0.1 Å (periodic images included).
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(atoms, Atoms):
        raise StructureError(f"{prefix}expected an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise StructureError(f"{prefix}empty structure (no atoms)")
    numbers = atoms.numbers
    bad = np.flatnonzero((numbers < 1) | (numbers >= len(chemical_symbols)))
    if len(bad):
        raise StructureError(f"{prefix}atom {bad[0]} has unknown atomic number {numbers[bad[0]]}")
    if species is not None:
        check_species(numbers, species, prefix)
    check_finite_positions(atoms.positions, prefix)
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise StructureError(f"{prefix}cell contains NaN or infinity")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        vectors = cell[pbc]
        sv = np.linalg.svd(vectors, compute_uv=False)
        if sv.max() < 1e-8 or sv.min() < 1e-6 * sv.max():
            raise StructureError(
                f"{prefix}singular cell along periodic directions {_axes(pbc)}: "
                f"cell vectors {cell[pbc].tolist()} are zero or linearly dependent"
            )
    check_no_overlap(closest_pair(atoms, MIN_DISTANCE), prefix)


def check_finite_positions(positions, prefix: str = "") -> None:
    """Raise :class:`StructureError` naming the first atom whose position is NaN or infinite."""
    if not np.isfinite(positions).all():
        atom = int(np.flatnonzero(~np.isfinite(positions).all(1))[0])
        raise StructureError(f"{prefix}positions contain NaN or infinity (atom {atom}: {positions[atom]})")


def check_no_overlap(pair: tuple[int, int, float] | None, prefix: str = "") -> None:
    """Raise :class:`StructureError` if ``pair`` (from :func:`closest_pair`) is closer than MIN_DISTANCE."""
    if pair is not None and pair[2] < MIN_DISTANCE:
        i, j, distance = pair
        raise StructureError(f"{prefix}{pair_name(i, j)} are {distance:.3g} Å apart (minimum {MIN_DISTANCE} Å): "
                             "overlapping atoms")


def pair_name(i: int, j: int) -> str:
    """``atoms i and j``, or ``atom i and its own periodic image`` when they are the same atom."""
    return f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"


def check_species(numbers, species: Iterable[int], prefix: str = "") -> None:
    """Raise :class:`StructureError` naming every element of ``numbers`` that is not in ``species``."""
    known = sorted({int(z) for z in species})
    unknown = sorted({int(z) for z in np.asarray(numbers).ravel()} - set(known))
    if unknown:
        names = ", ".join(f"{_symbol(z)} (Z={z})" for z in unknown)
        raise StructureError(f"{prefix}element {names} is not among the model's species "
                             f"({', '.join(_symbol(z) for z in known)})")


#: the cell list behind :func:`closest_pair` bins at no less than this radius (Å): bins of 0.1 Å made
#: 3.4 ms of a 38-atom slab's 20 Å of vacuum (a million empty bins); at 2 Å it is 0.3 ms
BIN_RADIUS = 2.0


def closest_pair(atoms: Atoms, distance: float) -> tuple[int, int, float] | None:
    """The first pair of atoms (periodic images included) closer than ``distance``, as
    ``(receiver i, sender j, |r_ij|)``, or None. O(N) (a cell list at ``max(distance, BIN_RADIUS)``)."""
    from mlff.data.neighbors import neighbor_list

    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, max(distance, BIN_RADIUS), backend="matscipy")
    if not len(nl.receivers):
        return None
    vectors = atoms.positions[nl.senders.numpy()] - atoms.positions[nl.receivers.numpy()] \
        + nl.shifts.numpy() @ atoms.cell.array
    lengths = np.linalg.norm(vectors, axis=1)
    close = np.flatnonzero(lengths < distance)
    if not len(close):
        return None
    k = int(close[0])
    return int(nl.receivers[k]), int(nl.senders[k]), float(lengths[k])


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else "?"


def _axes(pbc) -> str:
    return "".join("xyz"[k] for k in range(3) if pbc[k])
