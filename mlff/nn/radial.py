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

    It is evaluated as ``(1 - x)^3 sum_{k<p} C(k+2, 2) x^k``, the same polynomial factored, which keeps
    ``u`` to 0.2 % at 0.0005 Å from a 5 Å cutoff in float32 (the rounding of x). The expanded form cancels
    to about 1e-6 absolute there, where ``u`` itself is 3e-11, and the attention's softmax, weighted by
    ``u``, turned that noise into float32 forces wrong by 0.2 eV/Å on an EMT slab.
    """

    def __init__(self, cutoff: float, exponent: int = 5):
        super().__init__()
        self.cutoff, self.p = float(cutoff), int(exponent)
        if self.p < 1:
            raise ValueError(f"the envelope exponent must be >= 1, got {exponent}")
        self.coefficients = [math.comb(k + 2, 2) for k in range(self.p)]  # highest degree last

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        series = torch.full_like(x, float(self.coefficients[-1]))
        for c in reversed(self.coefficients[:-1]):
            series = series * x + c
        # (the same with (cutoff - r) / cutoff for 1 - x, exact but for one rounding, was miscompiled by
        # inductor inside the network: tests/models/test_compiled.py)
        return torch.where(x < 1, (1 - x) ** 3 * series, torch.zeros_like(series))


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
