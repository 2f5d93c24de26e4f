"""Coefficient layouts.

The package-wide layout is **l-major** (e3nn order): index ``l*l + l + m`` for degree ``l`` and
order ``m = -l..l``. SO(2) convolutions work **m-major** on the coefficients with ``|m| <= mmax``:
first all ``m = 0`` coefficients (``l = 0..lmax``), then ``m = +1`` (``l = 1..lmax``), ``m = -1``,
``m = +2``, ``m = -2`` and so on. :func:`m_major_index` is the one place that defines that order.
"""

from __future__ import annotations

import torch


def lm_index(l: int, m: int) -> int:
    """Position of coefficient (l, m) in the l-major layout."""
    return l * l + l + m


def degrees(lmax: int) -> torch.Tensor:
    """Degree l of each l-major coefficient, shape ``[(lmax+1)^2]``."""
    return torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)])


def orders(lmax: int) -> torch.Tensor:
    """Order m of each l-major coefficient, shape ``[(lmax+1)^2]``."""
    return torch.tensor([m for l in range(lmax + 1) for m in range(-l, l + 1)])


def truncated_index(lmax: int, mmax: int | None = None) -> torch.Tensor:
    """l-major indices of the coefficients with ``|m| <= mmax``, kept in l-major order."""
    mmax = lmax if mmax is None else mmax
    return torch.tensor([lm_index(l, m) for l in range(lmax + 1) for m in range(-l, l + 1) if abs(m) <= mmax])


def m_major_index(lmax: int, mmax: int) -> torch.Tensor:
    """l-major indices of the ``|m| <= mmax`` coefficients, in m-major order (see module doc)."""
    order = [lm_index(l, 0) for l in range(lmax + 1)]
    for m in range(1, mmax + 1):
        order += [lm_index(l, m) for l in range(m, lmax + 1)]
        order += [lm_index(l, -m) for l in range(m, lmax + 1)]
    return torch.tensor(order)


def m_major_sizes(lmax: int, mmax: int) -> list[int]:
    """Number of degrees per order in the m-major layout: ``[lmax+1, lmax, lmax, lmax-1, ...]``."""
    sizes = [lmax + 1]
    for m in range(1, mmax + 1):
        sizes += [lmax + 1 - m, lmax + 1 - m]
    return sizes
