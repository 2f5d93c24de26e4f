"""A neighbour list with a Verlet skin, reused between MD or relaxation steps.

The list is built with ``cutoff + skin`` and reused while no atom has moved more than ``skin / 2``
since the build and the cell, atomic numbers and periodicity are unchanged; then no pair can have
come closer than the cutoff unseen. Each call keeps only the pairs inside the cutoff at the current
positions, in canonical order, so the result is exactly what a fresh build would return.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms

from mlff.data.neighbors import NeighborList, neighbor_list, sort_edges


class VerletList:
    def __init__(self, cutoff: float, skin: float = 0.5, backend: str = "auto"):
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        self.cutoff, self.skin, self.backend = float(cutoff), float(skin), backend
        self.builds = 0
        self._reference = None  # (positions, cell, numbers, pbc) at the last build
        self._list: NeighborList | None = None
        self.closest: tuple[int, int, float] | None = None

    def needs_rebuild(self, atoms: Atoms) -> bool:
        if self._reference is None or self.skin == 0:
            return True
        positions, cell, numbers, pbc = self._reference
        if len(atoms) != len(numbers) or not np.array_equal(atoms.numbers, numbers):
            return True
        if not np.array_equal(atoms.pbc, pbc) or not np.array_equal(atoms.cell.array, cell):
            return True
        moved = np.sqrt(((atoms.positions - positions) ** 2).sum(1)).max(initial=0.0)
        return bool(moved > 0.5 * self.skin)

    def __call__(self, atoms: Atoms, device=None) -> NeighborList:
        """Edges ``j -> i`` with ``|r_ij| < cutoff`` at the current positions (canonical order)."""
        if self.needs_rebuild(atoms):
            positions = atoms.positions if device is None else torch.as_tensor(atoms.positions, device=device)
            # sorted once here: the pairs kept below stay in canonical order
            self._list = sort_edges(neighbor_list(positions, atoms.cell.array, atoms.pbc, self.cutoff + self.skin,
                                                  self.backend))
            self._reference = (atoms.positions.copy(), atoms.cell.array.copy(), atoms.numbers.copy(),
                               np.array(atoms.pbc, dtype=bool))
            self.builds += 1
        nl = self._list
        pos = torch.as_tensor(atoms.positions, dtype=torch.float64, device=nl.receivers.device)
        cell = torch.as_tensor(atoms.cell.array, dtype=torch.float64, device=nl.receivers.device)
        vec = pos[nl.senders] - pos[nl.receivers] + nl.shifts.to(torch.float64) @ cell
        squared = (vec * vec).sum(1)
        keep = squared < self.cutoff**2
        self.closest = None  # (receiver, sender, distance) of the shortest edge: every pair that close is here
        if bool(keep.any()):
            k = int(torch.argmin(torch.where(keep, squared, torch.inf)))
            self.closest = (int(nl.receivers[k]), int(nl.senders[k]), float(squared[k].sqrt()))
        return NeighborList(nl.receivers[keep], nl.senders[keep], nl.shifts[keep])
