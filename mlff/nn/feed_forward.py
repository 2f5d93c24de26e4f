"""EquiformerV2's node-wise feed-forward network (global frame)."""

from __future__ import annotations

import torch
from torch import nn

from mlff.nn.activation import GateActivation, SeparableS2Activation
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import degrees


class FeedForward(nn.Module):
    """SO3Linear -> nonlinearity -> SO3Linear.

    ``activation``:
    * ``"grid_mlp"`` (EquiformerV2's default): the hidden coefficients are sampled on the sphere
      grid, a 3-layer point-wise MLP (SiLU) acts on each point, and they are projected back;
      l = 0 comes from a separate scalar MLP.
    * ``"s2"``: separable S2 activation (SiLU on the grid; l = 0 from the scalar MLP).
    * ``"gate"``: gate activation, exactly equivariant (no grid).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        lmax: int,
        activation: str = "grid_mlp",
        grid_resolution: int = 18,
    ):
        super().__init__()
        self.activation = activation
        self.linear1 = SO3Linear(in_channels, hidden_channels, lmax)
        self.linear2 = SO3Linear(hidden_channels, out_channels, lmax)
        if activation == "gate":
            self.gate_mlp = nn.Linear(in_channels, lmax * hidden_channels)
            self.act = GateActivation(degrees(lmax), hidden_channels)
            return
        self.scalar_mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.SiLU())
        grid = SphereGrid(lmax, grid_resolution, grid_resolution)
        if activation == "s2":
            self.act = SeparableS2Activation(grid)
        elif activation == "grid_mlp":
            self.grid = grid
            self.grid_mlp = nn.Sequential(
                nn.Linear(hidden_channels, hidden_channels, bias=False),
                nn.SiLU(),
                nn.Linear(hidden_channels, hidden_channels, bias=False),
                nn.SiLU(),
                nn.Linear(hidden_channels, hidden_channels, bias=False),
            )
        else:
            raise ValueError(f"unknown FFN activation {activation!r}; use 'grid_mlp', 's2' or 'gate'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "gate":
            return self.linear2(self.act(self.gate_mlp(x[:, 0]), self.linear1(x)))
        scalars = self.scalar_mlp(x[:, 0])
        hidden = self.linear1(x)
        if self.activation == "s2":
            return self.linear2(self.act(scalars, hidden))
        out = self.grid.from_grid(self.grid_mlp(self.grid.to_grid(hidden)))
        return self.linear2(torch.cat([scalars.unsqueeze(1), out[:, 1:]], 1))
