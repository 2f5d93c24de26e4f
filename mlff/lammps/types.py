"""LAMMPS conventions mlff relies on: atom types mapped to the model's species, the default skin."""

from __future__ import annotations

import torch
from ase.data import atomic_numbers, chemical_symbols

from mlff.errors import ConfigError
from mlff.models.energy_model import EnergyModel

#: LAMMPS's default neighbour skin in metal units (Å)
SKIN = 2.0


def type_numbers(model: EnergyModel, elements: list[str]) -> torch.Tensor:
    """Atomic numbers of the LAMMPS types named ``elements`` (type 1 first), each checked to be among
    the model's species."""
    species = set(model.species)
    for name in elements:
        if atomic_numbers.get(name) not in species:
            known = ", ".join(chemical_symbols[z] for z in sorted(species))
            raise ConfigError(f"LAMMPS element {name!r} is not among the model's species ({known})")
    return torch.tensor([atomic_numbers[name] for name in elements])
