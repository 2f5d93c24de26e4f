"""Real spherical harmonics in e3nn's convention, as polynomials of the unit vector.

Convention (identical to ``e3nn.o3.spherical_harmonics(..., normalize=True,
normalization="component")``): the polar axis is **y**; the azimuth is measured from **z** towards
**x**; ``m`` runs from ``-l`` to ``l`` with ``m > 0`` the cosine-type and ``m < 0`` the sine-type
functions; there is no Condon–Shortley phase; each degree is normalised so that
``sum_m Y_lm(r)^2 = 2l + 1``. Coefficients of all degrees are concatenated l-major:
``[Y_00, Y_1-1, Y_10, Y_11, Y_2-2, ...]``, ``(lmax + 1)**2`` in all.

Everything is a polynomial in the unit vector (no angles), so values and gradients are finite
everywhere, the poles included.
"""

from __future__ import annotations

import math

import torch


def num_coefficients(lmax: int) -> int:
    """Number of real spherical-harmonic coefficients of degrees 0..lmax."""
    return (lmax + 1) ** 2


def normalization(l: int, m: int) -> float:
    """``N_lm`` in ``Y_lm = N_lm Q_l^m(y) (Re or Im of (z + i x)^m)`` for ``m = |m|``: ``sqrt((2l+1) (l-m)!/(l+m)!)``,
    times ``sqrt(2)`` for ``m > 0`` (the package's one definition; the Triton kernel is generated with it)."""
    value = math.sqrt((2 * l + 1) * math.factorial(l - m) / math.factorial(l + m))
    return value * math.sqrt(2.0) if m else value


def spherical_harmonics(lmax: int, vectors: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """``Y_lm(r)`` for l = 0..lmax, shape ``[..., (lmax+1)**2]``.

    ``vectors`` has shape ``[..., 3]``. With ``normalize=True`` (the usual case) the vectors are
    scaled to unit length first; otherwise they must already be unit vectors.
    """
    if lmax < 0:
        raise ValueError(f"lmax must be >= 0, got {lmax}")
    if normalize:
        vectors = vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    b, p, a = vectors.unbind(-1)  # x, y (polar), z
    one = torch.ones_like(p)
    # Re/Im of (a + i b)^m: the azimuthal factors cos(m phi) sin^m(theta), sin(m phi) sin^m(theta)
    cos_m, sin_m = [one], [torch.zeros_like(p)]
    for _ in range(lmax):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(a * c - b * s)
        sin_m.append(a * s + b * c)
    # Q[l][m] = associated Legendre P_l^m(p) divided by sin^m(theta), by the standard recurrences
    q = [[None] * (lmax + 1) for _ in range(lmax + 1)]
    for m in range(lmax + 1):
        q[m][m] = one * float(math.prod(range(1, 2 * m, 2)))  # (2m - 1)!!
        if m + 1 <= lmax:
            q[m + 1][m] = (2 * m + 1) * p * q[m][m]
        for l in range(m + 2, lmax + 1):
            q[l][m] = ((2 * l - 1) * p * q[l - 1][m] - (l + m - 1) * q[l - 2][m]) / (l - m)
    out = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            k = abs(m)
            azimuthal = cos_m[k] if m >= 0 else sin_m[k]
            out.append(normalization(l, k) * q[l][k] * azimuthal)
    return torch.stack(out, dim=-1)
