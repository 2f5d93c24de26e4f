"""Degree-wise linear maps of l-major coefficient tensors ``[N, (lmax+1)^2, C]``."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlff.so3.layout import degrees


class SO3Linear(nn.Module):
    """One ``C_in x C_out`` weight per degree, shared by all orders m; a bias on l = 0 only.

    Mixing channels within a degree commutes with rotations, so the map is exactly equivariant.
    """

    def __init__(self, in_channels: int, out_channels: int, lmax: int, bias: bool = True):
        super().__init__()
        self.lmax = lmax
        bound = 1.0 / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.empty(lmax + 1, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("expand", degrees(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("nkc,kcd->nkd", x, self.weight.index_select(0, self.expand))  # deterministic backward
        if self.bias is not None:
            out = torch.cat([out[:, :1] + self.bias, out[:, 1:]], dim=1)
        return out
