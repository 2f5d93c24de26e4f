"""Stop a run that blows up, and say why."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlff.data.neighbors import neighbor_list
from mlff.dynamics.deck import GuardSpec
from mlff.errors import MLFFError


class BlowUp(MLFFError):
    """The simulation left physically sensible territory; the message says how."""


def check(atoms: Atoms, spec: GuardSpec, temperature: float | None = None) -> None:
    energy = atoms.get_potential_energy()
    if not np.isfinite(energy):
        raise BlowUp(f"potential energy is {energy}")
    forces = atoms.get_forces()
    fmax = float(np.sqrt((forces**2).sum(1)).max())
    if not np.isfinite(fmax) or fmax > spec.max_force:
        raise BlowUp(f"force of {fmax:.3g} eV/Å exceeds the limit {spec.max_force} eV/Å")
    if temperature is not None and temperature > spec.max_temperature:
        raise BlowUp(f"temperature {temperature:.0f} K exceeds the limit {spec.max_temperature} K")
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, spec.min_distance, backend="matscipy")
    if len(nl.receivers):
        i, j = int(nl.receivers[0]), int(nl.senders[0])
        raise BlowUp(f"atoms {i} and {j} came closer than {spec.min_distance} Å")
