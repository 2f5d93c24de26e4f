"""Coefficient layouts.

The package-wide layout is **l-major** (e3nn order): index ``l*l + l + m`` for degree ``l`` and
order ``m = -l..l``. SO(2) convolutions work **m-major** on the coefficients with ``|m| <= mmax``:
first all ``m = 0`` coefficients (``l = 0..lmax``), then ``m = +1`` (``l = 1..lmax``), ``m = -1``,
``m = +2``, ``m = -2`` and so on. :func:`m_major_index` is the one place that defines that order.
"""

from __future__ import annotations

import functools

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


def _m_major_order(lmax: int, mmax: int) -> list[int]:
    order = [lm_index(l, 0) for l in range(lmax + 1)]
    for m in range(1, mmax + 1):
        order += [lm_index(l, m) for l in range(m, lmax + 1)]
        order += [lm_index(l, -m) for l in range(m, lmax + 1)]
    return order


def m_major_index(lmax: int, mmax: int) -> torch.Tensor:
    """l-major indices of the ``|m| <= mmax`` coefficients, in m-major order (see module doc)."""
    return torch.tensor(_m_major_order(lmax, mmax))


def m_major_sizes(lmax: int, mmax: int) -> list[int]:
    """Number of degrees per order in the m-major layout: ``[lmax+1, lmax, lmax, lmax-1, ...]``."""
    sizes = [lmax + 1]
    for m in range(1, mmax + 1):
        sizes += [lmax + 1 - m, lmax + 1 - m]
    return sizes


def m_major_pairs(lmax: int, mmax: int) -> torch.Tensor:
    """For each m-major row, its (l, |m|) pair: rows +m and -m of one degree share a pair.

    Pairs are numbered in the order the SO(2) convolution's radial scales come in: m = 0 (l = 0..lmax),
    then m = 1 (l = 1..lmax), m = 2 and so on: ``(lmax + 1) + sum_{m=1..mmax} (lmax + 1 - m)`` of them.
    """
    return torch.tensor(_m_major_pairs(lmax, mmax))


def _m_major_pairs(lmax: int, mmax: int) -> list[int]:
    pairs, first = list(range(lmax + 1)), lmax + 1
    for m in range(1, mmax + 1):
        block = list(range(first, first + lmax + 1 - m))
        pairs += block + block
        first += lmax + 1 - m
    return pairs


class WignerRows:
    """Block-sparse layout of the edge-frame Wigner-D rows kept by ``|m| <= mmax``.

    Row ``(l, m)`` of a Wigner-D matrix is non-zero only in the columns of degree ``l``
    (``l*l .. l*l + 2l``), so of the dense ``[K_mmax, (lmax+1)^2]`` matrix only
    ``sum_rows (2l + 1)`` entries are stored, flat, per edge (``nnz``; 115 of 475 for lmax 4, mmax 2).

    Stored rows are grouped by degree (``l = 0..lmax``) and, within a degree, in m-major order, so
    the rows of one degree are one contiguous ``[count, 2l+1]`` block of the flat storage.
    ``position[i]`` is stored row i's place in the m-major layout, ``offset[i]`` where its ``2l+1``
    entries start, ``pair[i]`` its (l, |m|) pair (:func:`m_major_pairs`; ``num_pairs`` in all).
    """

    def __init__(self, lmax: int, mmax: int):
        if not 0 <= mmax <= lmax:
            raise ValueError(f"need 0 <= mmax <= lmax, got lmax={lmax}, mmax={mmax}")
        self.lmax, self.mmax = lmax, mmax
        # plain Python throughout (no tensors), so that torch.compile folds the layout into constants
        place = {k: p for p, k in enumerate(_m_major_order(lmax, mmax))}
        self.degree, self.position, self.offset = [], [], []
        offset = 0
        for l in range(lmax + 1):
            for p in sorted(place[lm_index(l, m)] for m in range(-min(l, mmax), min(l, mmax) + 1)):
                self.degree.append(l)
                self.position.append(p)
                self.offset.append(offset)
                offset += 2 * l + 1
        self.nnz = offset
        self.num_rows = len(self.degree)
        pairs = _m_major_pairs(lmax, mmax)
        self.pair = [pairs[p] for p in self.position]
        self.num_pairs = max(pairs) + 1

    def check_rows(self, rows: int) -> None:
        """Raise unless ``rows`` is a row count the rotations accept: the m = 0 rows at least, all at most."""
        if not self.lmax + 1 <= rows <= self.num_rows:
            raise ValueError(f"rows must be between lmax + 1 = {self.lmax + 1} (the m = 0 rows) and "
                             f"{self.num_rows}, got {rows}")


@functools.lru_cache(maxsize=None)
def wigner_rows(lmax: int, mmax: int) -> WignerRows:
    """The (cached) :class:`WignerRows` of ``lmax``, ``mmax``."""
    return WignerRows(lmax, mmax)
