"""Checks that a structure is physically usable, with errors that say what and where."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from mlff.errors import StructureError

MIN_DISTANCE = 0.1  # Å; closer atoms are treated as a broken structure


def validate_atoms(atoms: Atoms, where: str = "") -> None:
    """Raise :class:`StructureError` if ``atoms`` cannot be turned into a sensible graph.

    ``where`` names the structure in the message (for example ``"frame 3 of data.xyz"``).
    Checked: empty structure, unknown atomic numbers, NaN or infinite positions or cell, a singular
    cell along periodic directions, and atoms closer than 0.1 Å (periodic images included).
    """
    prefix = f"{where}: " if where else ""
    if len(atoms) == 0:
        raise StructureError(f"{prefix}empty structure (no atoms)")
    numbers = atoms.numbers
    bad = np.flatnonzero((numbers < 1) | (numbers >= len(chemical_symbols)))
    if len(bad):
        raise StructureError(f"{prefix}atom {bad[0]} has unknown atomic number {numbers[bad[0]]}")
    positions = atoms.positions
    if not np.isfinite(positions).all():
        atom = int(np.flatnonzero(~np.isfinite(positions).all(1))[0])
        raise StructureError(f"{prefix}positions contain NaN or infinity (atom {atom}: {positions[atom]})")
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
    _check_min_distance(atoms, prefix)


def _axes(pbc) -> str:
    return "".join("xyz"[k] for k in range(3) if pbc[k])


def _check_min_distance(atoms: Atoms, prefix: str) -> None:
    from mlff.data.neighbors import neighbor_list

    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, MIN_DISTANCE, backend="matscipy")
    if len(nl.receivers):
        i, j = int(nl.receivers[0]), int(nl.senders[0])
        vec = atoms.positions[j] - atoms.positions[i] + nl.shifts[0].numpy() @ atoms.cell.array
        what = f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"
        raise StructureError(
            f"{prefix}{what} are {np.linalg.norm(vec):.3g} Å apart (minimum {MIN_DISTANCE} Å): "
            "overlapping atoms"
        )
