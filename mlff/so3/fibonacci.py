"""Near-uniform point sets on the unit sphere: the Fibonacci (golden-spiral) lattice.

Point i of n sits at height ``y_i = 1 - (2i + 1)/n`` (the polar axis is y, as for the spherical
harmonics) and azimuth ``i * pi * (3 - sqrt 5)``. Every point then represents the same area
``4 pi / n``, so equal weights are a good quadrature, and there is no pole clustering as on a
product (equiangular) grid.
"""

from __future__ import annotations

import math

import torch


def fibonacci_points(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` unit vectors ``[n, 3]`` on the Fibonacci lattice (deterministic, float64 by default)."""
    if n < 1:
        raise ValueError(f"need at least one point, got {n}")
    i = torch.arange(n, dtype=torch.float64)
    y = 1.0 - (2.0 * i + 1.0) / n
    radius = torch.sqrt((1.0 - y * y).clamp_min(0.0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([radius * torch.sin(phi), y, radius * torch.cos(phi)], 1).to(dtype)
