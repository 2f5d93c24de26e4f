"""Near-uniform point sets on the unit sphere and transforms between them and harmonic coefficients.

The Fibonacci (golden-spiral) lattice puts point i of n at height ``y_i = 1 - (2i + 1)/n`` (the
polar axis is y, as for the spherical harmonics) and azimuth ``i * pi * (3 - sqrt 5)``, so every
point represents about the same area ``4 pi / n`` and there is no pole clustering as on a product
(equiangular) grid. :func:`repel` makes the set more uniform still: points push each other apart
with a ``1/d^2`` force and are projected back onto the sphere after every step (EST's
"scattering" refinement; done once, then cached by the caller).

:class:`SphereSampling` evaluates coefficients at the points and fits coefficients to point values
by least squares (the pseudo-inverse of the harmonics matrix, not its transpose), so the round trip
coefficients -> points -> coefficients is the identity whenever ``n >= (lmax + 1)^2``.
"""

from __future__ import annotations

import math

import torch

from mlff.so3.spherical_harmonics import spherical_harmonics


def fibonacci_points(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` unit vectors ``[n, 3]`` on the Fibonacci lattice (deterministic, float64 by default)."""
    if n < 1:
        raise ValueError(f"need at least one point, got {n}")
    i = torch.arange(n, dtype=torch.float64)
    y = 1.0 - (2.0 * i + 1.0) / n
    radius = torch.sqrt((1.0 - y * y).clamp_min(0.0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([radius * torch.sin(phi), y, radius * torch.cos(phi)], 1).to(dtype)


def repel(points: torch.Tensor, steps: int = 100, step_size: float | None = None) -> torch.Tensor:
    """Spread unit vectors ``[n, 3]`` more evenly: ``steps`` rounds of pairwise ``1/d^2`` repulsion
    (tangential part only) followed by re-projection onto the sphere. Deterministic; float64."""
    p = points.to(torch.float64).clone()
    n = p.shape[0]
    if n < 2 or steps <= 0:
        return p
    # a step that moves a point by a fraction of the typical spacing sqrt(4 pi / n)
    step_size = step_size if step_size is not None else 0.1 * (4 * math.pi / n) ** 1.5 / 4
    eye = torch.eye(n, dtype=torch.bool)
    for _ in range(steps):
        diff = p[:, None, :] - p[None, :, :]
        dist = torch.linalg.vector_norm(diff, dim=-1).masked_fill(eye, 1.0)
        force = (diff / dist[..., None] ** 3).masked_fill(eye[..., None], 0.0).sum(1)
        force = force - (force * p).sum(1, keepdim=True) * p  # tangential component
        p = torch.nn.functional.normalize(p + step_size * force, dim=1)
    return p


class SphereSampling(torch.nn.Module):
    """Coefficients ``[..., (lmax+1)^2, C]`` <-> values at ``n`` sphere points ``[..., n, C]``.

    ``to_points`` evaluates the band-limited function (component-normalised harmonics, as in
    :mod:`mlff.so3.spherical_harmonics`); ``from_points`` is its least-squares inverse.
    """

    def __init__(self, lmax: int, n: int | None = None, refine_steps: int = 0, points: torch.Tensor | None = None):
        super().__init__()
        if points is None:
            n = n if n is not None else max((2 * lmax) ** 2, (lmax + 1) ** 2)
            points = fibonacci_points(n) if n >= (lmax + 1) ** 2 else None
        else:  # any other point set, e.g. an equiangular grid for comparison
            points = torch.nn.functional.normalize(torch.as_tensor(points, dtype=torch.float64), dim=1)
            n = points.shape[0]
        if points is None or n < (lmax + 1) ** 2:
            raise ValueError(f"{n} points cannot resolve lmax={lmax}: need at least {(lmax + 1) ** 2}")
        points = repel(points, refine_steps)
        basis = spherical_harmonics(lmax, points)  # [n, K]
        self.lmax, self.n = lmax, n
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("to_points_mat", basis, persistent=False)
        self.register_buffer("from_points_mat", torch.linalg.pinv(basis), persistent=False)

    def to_points(self, coefficients: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.to_points_mat.to(coefficients.dtype), coefficients)

    def from_points(self, values: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.from_points_mat.to(values.dtype), values)

    def round_trip_error(self) -> float:
        """Largest entry of ``from_points @ to_points - I`` (0 up to round-off for n >= (lmax+1)^2)."""
        k = self.to_points_mat.shape[1]
        return float((self.from_points_mat @ self.to_points_mat - torch.eye(k, dtype=torch.float64)).abs().max())

    def quadrature_error(self) -> float:
        """Largest entry of ``Y^T Y / n - I``: how far equal weights are from an exact quadrature
        (component-normalised harmonics have unit mean square over the sphere)."""
        y = self.to_points_mat
        return float((y.T @ y / self.n - torch.eye(y.shape[1], dtype=torch.float64)).abs().max())
