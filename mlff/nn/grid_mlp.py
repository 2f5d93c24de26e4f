"""A point-wise MLP on the sphere grid: EquiformerV2's nonlinearity for the FFN and the energy head."""

from __future__ import annotations

import torch
from torch import nn

from mlff.kernels import grid_mlp
from mlff.nn.chunking import map_node_chunks
from mlff.so3.grid import SphereGrid


class GridMLP(nn.Module):
    """Coefficients ``[N, K, C]`` -> grid values -> Linear, SiLU, Linear, SiLU, Linear (no biases,
    the same at every point) -> coefficients ``[N, K, C]``, as one :func:`mlff.kernels.grid_mlp`
    (fused on Triton). Equivariant up to the grid's aliasing."""

    def __init__(self, channels: int, lmax: int, grid_resolution: int):
        super().__init__()
        self.grid = SphereGrid(lmax, grid_resolution, grid_resolution)
        self.mlp = nn.Sequential(
            nn.Linear(channels, channels, bias=False), nn.SiLU(),
            nn.Linear(channels, channels, bias=False), nn.SiLU(),
            nn.Linear(channels, channels, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        to_grid, from_grid = self.grid.to_grid_mat.to(x.dtype), self.grid.from_grid_mat.to(x.dtype)
        # row-wise, so large systems run it over chunks of atoms (mlff.nn.chunking)
        return map_node_chunks(grid_mlp, x, to_grid, from_grid, [self.mlp[i].weight for i in (0, 2, 4)])
