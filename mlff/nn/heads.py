"""The per-atom energy head.

EquiformerV2's head is a feed-forward network whose l = 0 output is read as the energy. With the
grid MLP and separable activation that output comes from the l = 0 input alone, which leaves the
l > 0 outputs of the last block without any effect on the energy (dead weights; fairchem uses them
only through its direct-force head). Here the invariant is built from every degree: the l = 0
projection of the grid MLP is added to the scalar path, or, for grid-free models, the squared
norms of each degree are fed to the MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.nn.grid_mlp import GridMLP
from mlff.nn.so3_linear import SO3Linear


class EnergyHead(nn.Module):
    def __init__(self, channels: int, hidden: int, lmax: int, activation: str = "grid_mlp", grid_resolution: int = 18):
        super().__init__()
        self.lmax = lmax
        self.linear = SO3Linear(channels, hidden, lmax)
        self.use_grid = activation != "gate"
        if self.use_grid:
            self.scalar_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU())
            self.grid_mlp = GridMLP(hidden, lmax, grid_resolution)
        else:
            self.invariant_mlp = nn.Sequential(nn.Linear((lmax + 1) * hidden, hidden), nn.SiLU())
        self.out = nn.Linear(hidden, 1, bias=False)  # a constant would cancel against E0 anyway

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, (lmax+1)^2, C]`` -> per-atom energies ``[N]``."""
        h = self.linear(x)
        if self.use_grid:
            grid_scalar = self.grid_mlp(h)[:, 0]
            s = self.scalar_mlp(x[:, 0]) + grid_scalar
        else:
            norms = [h[:, l * l : (l + 1) ** 2].pow(2).sum(1) for l in range(1, self.lmax + 1)]
            s = self.invariant_mlp(torch.cat([h[:, 0], *norms], dim=1))
        return self.out(s)[:, 0]
