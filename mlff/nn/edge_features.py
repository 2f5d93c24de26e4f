"""The invariant features of an edge j -> i: its radial basis and embeddings of both species."""

from __future__ import annotations

import torch
from torch import nn


class EdgeFeatures(nn.Module):
    """``[basis(r_ij), source(Z_j), target(Z_i)]``, shape ``[E, num_basis + 2 edge_channels]``.

    The species embeddings start near zero (uniform in ±1e-3), as in EquiformerV2, so that an
    untrained layer first sees the distance and learns the chemistry.
    """

    def __init__(self, num_species: int, edge_channels: int, num_basis: int):
        super().__init__()
        self.source = nn.Embedding(num_species, edge_channels)
        self.target = nn.Embedding(num_species, edge_channels)
        nn.init.uniform_(self.source.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.target.weight, -1e-3, 1e-3)
        self.num_features = num_basis + 2 * edge_channels

    def forward(self, basis: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        sender, receiver = edge_index
        return torch.cat([basis, self.source(species[sender]), self.target(species[receiver])], dim=1)
