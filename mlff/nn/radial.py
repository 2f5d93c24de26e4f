"""Radial basis functions, the smooth cutoff envelope, and the radial MLP."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlff.config import choose


class PolynomialEnvelope(nn.Module):
    """``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` with ``x = r / cutoff``.

    ``u(0) = 1`` and ``u`` with its first and second derivatives vanish at the cutoff, so every
    quantity multiplied by it enters and leaves the neighbourhood smoothly (zero beyond the cutoff).
    """

    def __init__(self, cutoff: float, exponent: int = 5):
        super().__init__()
        self.cutoff, self.p = float(cutoff), int(exponent)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        p = self.p
        u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return torch.where(x < 1, u, torch.zeros_like(u))


class GaussianBasis(nn.Module):
    """``exp(-((r - mu_k) / width)^2 / 2)`` on ``num`` centres evenly spaced in [0, cutoff]."""

    def __init__(self, cutoff: float, num: int = 128, width_factor: float = 2.0):
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num), persistent=False)
        self.coeff = -0.5 / (width_factor * cutoff / (num - 1)) ** 2
        self.num = num

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.coeff * (r[..., None] - self.centres.to(r.dtype)) ** 2)


class BesselBasis(nn.Module):
    """``sqrt(2/c) sin(k pi r / c) / r`` for k = 1..num (DimeNet's radial basis)."""

    def __init__(self, cutoff: float, num: int = 8):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("freq", torch.arange(1, num + 1) * math.pi / cutoff, persistent=False)
        self.num = num

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r[..., None]
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq.to(r.dtype) * r) / r


RADIAL_BASES = {"gaussian": GaussianBasis, "bessel": BesselBasis}


def radial_basis(kind: str, cutoff: float, num: int) -> nn.Module:
    """The radial basis named ``kind`` (a key of :data:`RADIAL_BASES`) with ``num`` functions."""
    return choose(RADIAL_BASES, kind, "basis")(cutoff, num)


class RadialMLP(nn.Module):
    """(Linear -> LayerNorm -> SiLU) for each hidden width, then a final Linear."""

    def __init__(self, channels: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(len(channels) - 1):
            layers.append(nn.Linear(channels[i], channels[i + 1]))
            if i < len(channels) - 2:
                layers += [nn.LayerNorm(channels[i + 1]), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
