"""EquiformerV2's node-wise feed-forward network (global frame) and its nonlinearities.

``FeedForward`` is SO3Linear -> nonlinearity -> SO3Linear. The nonlinearity is chosen by name from
:data:`FFN_ACTIVATIONS`; each one maps the input's l = 0 features and the hidden coefficients to the
activated hidden coefficients:

* ``"grid_mlp"`` (EquiformerV2's default): a 3-layer point-wise MLP on the sphere grid, with l = 0
  from a separate scalar MLP;
* ``"s2"``: the separable S2 activation (SiLU on the grid, l = 0 from the scalar MLP);
* ``"gate"``: the gate activation, exactly equivariant (no grid).
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.config import choose
from mlff.nn.activation import GateActivation, SeparableS2Activation
from mlff.nn.grid_mlp import GridMLP
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import degrees


class GatedNonlinearity(nn.Module):
    """SiLU on l = 0; l > 0 scaled by sigmoid gates computed from the input's scalars."""

    def __init__(self, in_channels: int, hidden_channels: int, lmax: int, grid_resolution: int):
        super().__init__()
        self.gate_mlp = nn.Linear(in_channels, lmax * hidden_channels)
        self.gate = GateActivation(degrees(lmax), hidden_channels)

    def forward(self, scalars: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.gate(self.gate_mlp(scalars), hidden)


class S2Nonlinearity(nn.Module):
    """The separable S2 activation, l = 0 from a scalar MLP of the input."""

    def __init__(self, in_channels: int, hidden_channels: int, lmax: int, grid_resolution: int):
        super().__init__()
        self.scalar_mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.SiLU())
        self.act = SeparableS2Activation(SphereGrid(lmax, grid_resolution, grid_resolution))

    def forward(self, scalars: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.scalar_mlp(scalars), hidden)


class GridMLPNonlinearity(nn.Module):
    """The point-wise grid MLP for l > 0, l = 0 from a scalar MLP of the input."""

    def __init__(self, in_channels: int, hidden_channels: int, lmax: int, grid_resolution: int):
        super().__init__()
        self.scalar_mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.SiLU())
        self.grid_mlp = GridMLP(hidden_channels, lmax, grid_resolution)

    def forward(self, scalars: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        out = self.grid_mlp(hidden)
        return torch.cat([self.scalar_mlp(scalars).unsqueeze(1), out[:, 1:]], 1)


FFN_ACTIVATIONS = {"grid_mlp": GridMLPNonlinearity, "s2": S2Nonlinearity, "gate": GatedNonlinearity}


class FeedForward(nn.Module):
    """SO3Linear -> nonlinearity (``FFN_ACTIVATIONS[activation]``) -> SO3Linear."""

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
        self.linear1 = SO3Linear(in_channels, hidden_channels, lmax)
        self.act = choose(FFN_ACTIVATIONS, activation, "ffn_activation")(in_channels, hidden_channels, lmax, grid_resolution)
        self.linear2 = SO3Linear(hidden_channels, out_channels, lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(x[:, 0], self.linear1(x)))
