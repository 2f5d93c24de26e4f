"""Stop a run that blows up, and say why."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlff.data.validation import closest_pair, pair_name
from mlff.dynamics.deck import GuardSpec
from mlff.errors import MLFFError


class BlowUp(MLFFError):
    """The simulation left physically sensible territory; the message says how."""


def check(atoms: Atoms, spec: GuardSpec, temperature: float | None = None,
          initial_volume: float | None = None) -> None:
    """Raise :class:`BlowUp` if the energy or a force is not finite or too large, the temperature is
    too high, two atoms came too close, or (given ``initial_volume``, for a fully periodic cell) the
    volume grew or shrank by more than ``spec.max_volume_ratio``: a runaway box would otherwise
    make the neighbour list grow without bound."""
    energy = atoms.get_potential_energy()
    if not np.isfinite(energy):
        raise BlowUp(f"potential energy is {energy}")
    forces = atoms.get_forces()
    fmax = float(np.sqrt((forces**2).sum(1)).max())
    if not np.isfinite(fmax) or fmax > spec.max_force:
        raise BlowUp(f"force of {fmax:.3g} eV/Å exceeds the limit {spec.max_force} eV/Å")
    if temperature is not None and temperature > spec.max_temperature:
        raise BlowUp(f"temperature {temperature:.0f} K exceeds the limit {spec.max_temperature} K")
    if initial_volume is not None and all(atoms.pbc):
        ratio = atoms.get_volume() / initial_volume
        if not 1 / spec.max_volume_ratio <= ratio <= spec.max_volume_ratio:
            raise BlowUp(f"cell volume changed by a factor {ratio:.3g} (limit {spec.max_volume_ratio:g} either way)")
    pair = closest_pair(atoms, spec.min_distance) if spec.min_distance > 0 else None
    if pair is not None:
        i, j, distance = pair
        raise BlowUp(f"{pair_name(i, j)} came {distance:.3g} Å apart, closer than the limit {spec.min_distance} Å")
