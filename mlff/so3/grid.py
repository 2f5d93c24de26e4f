"""Sampling spherical-harmonic coefficients on a sphere grid and projecting back.

``SphereGrid`` is the e3nn-style product grid used by EquiformerV2: ``res_beta`` polar angles at
the midpoints ``(i + 1/2) * pi / res_beta`` (measured from +y) times ``res_alpha`` equally spaced
azimuths. ``to_grid`` evaluates a band-limited function from its coefficients; ``from_grid``
projects grid values back with a quadrature that is exact for products of band-limited
functions, so ``from_grid @ to_grid`` is the identity. The scaling matches e3nn's
``ToS2Grid``/``FromS2Grid`` with ``normalization="component"`` (degree l is scaled by
``1/sqrt((2l+1)(lmax+1))`` on the grid), so grid values of unit-variance features are O(1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mlff.so3.layout import degrees, orders, truncated_index
from mlff.so3.spherical_harmonics import spherical_harmonics


def _polar_weights(res_beta: int) -> np.ndarray:
    """Weights v_i with sum_i v_i f(cos b_i) = int_0^pi f(cos b) sin b db for deg f < res_beta."""
    betas = (np.arange(res_beta) + 0.5) * np.pi / res_beta
    vander = np.polynomial.legendre.legvander(np.cos(betas), res_beta - 1).T  # [n, i] = P_n(cos b_i)
    moments = np.zeros(res_beta)
    moments[0] = 2.0  # int_{-1}^{1} P_n(t) dt
    return np.linalg.solve(vander, moments)


def grid_points(res_beta: int, res_alpha: int) -> torch.Tensor:
    """Unit vectors of the grid, shape ``[res_beta * res_alpha, 3]`` (beta-major), float64."""
    betas = (torch.arange(res_beta, dtype=torch.float64) + 0.5) * math.pi / res_beta
    alphas = torch.arange(res_alpha, dtype=torch.float64) * 2 * math.pi / res_alpha
    b, a = torch.meshgrid(betas, alphas, indexing="ij")
    points = torch.stack([torch.sin(a) * torch.sin(b), torch.cos(b), torch.cos(a) * torch.sin(b)], -1)
    return points.reshape(-1, 3)


class SphereGrid(torch.nn.Module):
    """Matrices ``to_grid [G, K]`` and ``from_grid [K, G]`` for K coefficients, G grid points.

    ``index`` lists the l-major positions of the coefficients that take part, in the order the
    caller stores them (default: all, l-major). EquiformerV2's edge-frame grid uses the ``|m| <= mmax``
    coefficients in m-major order (:func:`mlff.so3.layout.m_major_index`).
    """

    def __init__(self, lmax: int, res_beta: int, res_alpha: int | None = None, index: torch.Tensor | None = None):
        super().__init__()
        res_alpha = res_alpha or res_beta
        index = truncated_index(lmax) if index is None else torch.as_tensor(index)
        mmax = int(orders(lmax)[index].abs().max())
        if res_beta <= lmax or res_alpha <= 2 * mmax:
            raise ValueError(f"grid {res_beta}x{res_alpha} is too coarse for lmax={lmax}, mmax={mmax}")
        self.lmax, self.mmax = lmax, mmax
        self.res_beta, self.res_alpha = res_beta, res_alpha
        degree = degrees(lmax).double()[index]
        scale = 1.0 / torch.sqrt((2 * degree + 1) * (lmax + 1))
        sh = spherical_harmonics(lmax, grid_points(res_beta, res_alpha))[:, index]  # [G, K]
        weights = torch.as_tensor(_polar_weights(res_beta)).repeat_interleave(res_alpha)
        weights = weights * (2 * math.pi / res_alpha) / (4 * math.pi)  # quadrature of the mean
        self.register_buffer("to_grid_mat", sh * scale, persistent=False)
        self.register_buffer("from_grid_mat", (sh * weights[:, None]).T / scale[:, None], persistent=False)

    @property
    def num_points(self) -> int:
        return self.res_beta * self.res_alpha

    def to_grid(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``[..., K, C]`` coefficients -> ``[..., G, C]`` grid values."""
        return torch.matmul(self.to_grid_mat.to(coefficients.dtype), coefficients)

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., G, C]`` grid values -> ``[..., K, C]`` coefficients."""
        return torch.matmul(self.from_grid_mat.to(values.dtype), values)
