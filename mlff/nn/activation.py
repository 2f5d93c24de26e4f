"""Equivariant nonlinearities for coefficient tensors ``[..., K, C]``."""

from __future__ import annotations

import torch
from torch import nn

from mlff.kernels import grid_silu
from mlff.so3.grid import SphereGrid


class SmoothLeakyReLU(nn.Module):
    """``(1+a)/2 x + (1-a)/2 x (2 sigmoid(x) - 1)``: a smooth leaky ReLU with slope a for x << 0."""

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.a = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1 + self.a) * x + 0.5 * (1 - self.a) * x * (2 * torch.sigmoid(x) - 1)


class GateActivation(nn.Module):
    """SiLU on l = 0; each l > 0 channel scaled by the sigmoid of its own gating scalar.

    ``degree[k]`` is the degree of coefficient k in the caller's layout; ``gates`` holds one scalar
    per (degree >= 1, channel), degree-major: ``[..., lmax * C]``. Exactly equivariant.
    """

    def __init__(self, degree: torch.Tensor, channels: int):
        super().__init__()
        self.lmax = int(degree.max())
        self.channels = channels
        self.register_buffer("gate_index", (degree - 1).clamp_min(0), persistent=False)
        self.register_buffer("is_scalar", degree == 0, persistent=False)

    def forward(self, gates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(gates.reshape(*gates.shape[:-1], self.lmax, self.channels))
        g = g[..., self.gate_index, :]  # [..., K, C]
        mask = self.is_scalar[:, None]
        return torch.where(mask, torch.nn.functional.silu(x), x * g)


class SeparableS2Activation(nn.Module):
    """EquiformerV2's separable S2 activation.

    l = 0 output: SiLU of separate scalar inputs. l > 0 output: the coefficients are sampled on a
    sphere grid, passed through SiLU point-wise and projected back. Rotation equivariance is
    exact up to the grid's aliasing (SiLU of a band-limited function is not band-limited).
    """

    def __init__(self, grid: SphereGrid):
        super().__init__()
        self.grid = grid

    def forward(self, scalars: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        out = grid_silu(x, self.grid.to_grid_mat.to(dtype), self.grid.from_grid_mat.to(dtype))
        return torch.cat([torch.nn.functional.silu(scalars).unsqueeze(-2), out[..., 1:, :]], -2)
