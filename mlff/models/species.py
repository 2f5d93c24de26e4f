"""Map atomic numbers to the model's species indices, with a clear error for unknown elements."""

from __future__ import annotations

import torch
from ase.data import chemical_symbols
from torch import nn

from mlff.errors import StructureError


class SpeciesIndex(nn.Module):
    def __init__(self, species: list[int]):
        super().__init__()
        species = sorted({int(z) for z in species})
        if not species or species[0] < 1 or species[-1] >= len(chemical_symbols):
            raise ValueError(f"species must be atomic numbers 1..{len(chemical_symbols) - 1}, got {species}")
        self.species = species
        table = torch.full((len(chemical_symbols),), -1, dtype=torch.long)
        table[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("table", table, persistent=False)

    def __len__(self) -> int:
        return len(self.species)

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        index = self.table[numbers.clamp(0, len(self.table) - 1)]
        if bool((index < 0).any()):
            unknown = sorted({int(z) for z in numbers[index < 0].tolist()})
            names = ", ".join(f"{chemical_symbols[z] if 0 < z < len(chemical_symbols) else '?'} (Z={z})" for z in unknown)
            known = ", ".join(chemical_symbols[z] for z in self.species)
            raise StructureError(f"element {names} is not among the model's species ({known})")
        return index
