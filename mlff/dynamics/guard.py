"""Stop a run that blows up, and say why."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlff.data.validation import closest_pair
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
    pair = closest_pair(atoms, spec.min_distance) if spec.min_distance > 0 else None
    if pair is not None:
        i, j, distance = pair
        what = f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"
        raise BlowUp(f"{what} came {distance:.3g} Å apart, closer than the limit {spec.min_distance} Å")
