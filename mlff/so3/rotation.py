"""Rotations: the per-edge frame rotation and Wigner-D matrices in e3nn's convention.

``wigner_d(R)`` satisfies ``Y(R @ r) = D(R) @ Y(r)`` for the spherical harmonics of
:mod:`mlff.so3.spherical_harmonics` (e3nn's convention). It is computed without Euler angles: the
harmonics of a fixed set of sample points ``x_k`` are rotated, ``Y(R x_k)``, and ``D`` is recovered
with the pseudo-inverse of ``Y(x_k)``. ``Y(R x_k)`` is a polynomial in the entries of ``R``, so ``D``
is smooth and exactly differentiable everywhere: no gimbal lock, no pole, nothing detached.
"""

from __future__ import annotations

import numpy as np
import torch

from mlff.so3.fibonacci import fibonacci_points
from mlff.so3.layout import m_major_index, wigner_rows
from mlff.so3.spherical_harmonics import spherical_harmonics

AXIS = (0.0, 1.0, 0.0)  # e3nn's polar axis: the m = 0 harmonics are symmetric about y


def edge_rotation(vectors: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``R`` with ``R @ r_hat = y_hat`` for each vector ``r`` (shape ``[E, 3]``).

    For ``r_y >= 0`` this is the minimal rotation taking ``r_hat`` to ``+y``; otherwise the minimal
    rotation to ``-y`` followed by a half turn about ``x``. Both branches have denominators >= 1, so
    ``R`` and its derivatives are finite everywhere. Quantities computed in the edge frame by
    SO(2)-equivariant operations do not depend on this choice of roll about the edge axis.
    """
    u = vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    x, y, z = u.unbind(-1)
    sign = torch.where(y >= 0, torch.ones_like(y), -torch.ones_like(y))
    # v = u x (sign * y_hat) = sign * (-z, 0, x);  c = u . (sign * y_hat) = |y|
    vx, vz = -sign * z, sign * x
    c = sign * y
    k = 1.0 / (1.0 + c)
    # R1 = I + [v]x + [v]x^2 / (1 + c), with v = (vx, 0, vz)
    r1 = torch.stack(
        [
            torch.stack([1 - k * vz * vz, -vz, k * vx * vz], -1),
            torch.stack([vz, 1 - k * (vx * vx + vz * vz), -vx], -1),
            torch.stack([k * vx * vz, vx, 1 - k * vx * vx], -1),
        ],
        -2,
    )
    # half turn about x for the lower hemisphere: diag(1, -1, -1) @ R1
    flip = torch.stack([torch.ones_like(sign), sign, sign], -1).unsqueeze(-1)
    return flip * r1


def random_rotation(rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A rotation matrix ``[3, 3]`` (det +1) drawn uniformly from SO(3) (Haar measure), float64.

    ``rng`` is a numpy Generator or a seed. QR of a Gaussian matrix with the signs of R's diagonal
    moved into Q is Haar-distributed on O(3); the determinant's sign then picks SO(3).
    """
    rng = np.random.default_rng(rng)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)


def _sample_points_and_inverses(lmax: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sample points ``x_k`` ``[P, 3]`` and, per degree, ``pinv(Y^l(X))`` ``[P, 2l+1]`` (float64).

    ``D^l = Y^l(R X) @ pinv(Y^l(X))`` with X the points as columns; a few more points than the
    ``2 lmax + 1`` needed keep the system well conditioned.
    """
    points = fibonacci_points(2 * lmax + 1 + max(4, lmax))
    sh = spherical_harmonics(lmax, points)  # [P, (L+1)^2]
    inverses = [torch.linalg.pinv(sh[:, l * l : (l + 1) ** 2].T) for l in range(lmax + 1)]
    return points, inverses


class WignerD(torch.nn.Module):
    """Block-diagonal Wigner-D matrices for degrees 0..lmax from rotation matrices.

    ``rows`` (optional) selects which rows of the full ``[(lmax+1)^2, (lmax+1)^2]`` matrix to
    return, in the order given. This lets callers fold a layout change (l-major to m-major) and an
    ``|m| <= mmax`` truncation into the rotation itself.
    """

    def __init__(self, lmax: int, rows: torch.Tensor | None = None):
        super().__init__()
        self.lmax = lmax
        points, inverses = _sample_points_and_inverses(lmax)
        count, n = points.shape[0], (lmax + 1) ** 2
        # Stored per row as pinv[k, a, b]: the entry of pinv(Y^l(X)) for point k and column b,
        # where l is a's degree.
        pinv = torch.zeros(count, n, n, dtype=torch.float64)
        for l, inverse in enumerate(inverses):
            block = slice(l * l, (l + 1) ** 2)
            pinv[:, block, block] = inverse.unsqueeze(1).expand(count, 2 * l + 1, 2 * l + 1)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("pinv", pinv, persistent=False)
        rows = torch.arange(n) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        self.register_buffer("rows", rows, persistent=False)

    def forward(self, rotation: torch.Tensor) -> torch.Tensor:
        """``rotation`` ``[E, 3, 3]`` -> ``D[E, len(rows), (lmax+1)^2]``."""
        dtype = rotation.dtype
        rotated = torch.einsum("eij,kj->eki", rotation, self.points.to(dtype))  # [E, K, 3]
        sh = spherical_harmonics(self.lmax, rotated, normalize=False)[..., self.rows]  # [E, K, R]
        pinv = self.pinv.to(dtype)[:, self.rows, :]  # [K, R, n]
        return torch.einsum("ekr,krn->ern", sh, pinv)


class WignerBlocks(torch.nn.Module):
    """The non-zero blocks of the edge-frame Wigner-D rows, flat ``[E, nnz]``.

    Same matrices as :class:`WignerD` with ``rows=m_major_index(lmax, mmax)``, stored in the
    block-sparse layout of :class:`mlff.so3.layout.WignerRows`: per degree only the rows kept by
    ``|m| <= mmax`` and only their ``2l+1`` non-zero columns. For lmax 4, mmax 2 that is 115 numbers
    per edge instead of 475.
    """

    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.layout = wigner_rows(lmax, mmax)
        points, inverses = _sample_points_and_inverses(lmax)
        lm = m_major_index(lmax, mmax)[torch.tensor(self.layout.position)]  # l-major index per stored row
        # pinv(Y^l(X)) per stored row, zero-padded to 2 lmax + 1 columns: one contraction for all rows
        width = 2 * lmax + 1
        padded = torch.zeros(points.shape[0], self.layout.num_rows, width, dtype=torch.float64)
        valid = []
        for row, l in enumerate(self.layout.degree):
            padded[:, row, : 2 * l + 1] = inverses[l]
            valid += [row * width + j for j in range(2 * l + 1)]
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("row_lm", lm, persistent=False)
        self.register_buffer("inverse", padded, persistent=False)
        self.register_buffer("valid", torch.tensor(valid), persistent=False)  # flat [rows, width] -> stored

    def forward(self, rotation: torch.Tensor, harmonics=None) -> torch.Tensor:
        """``rotation`` ``[E, 3, 3]`` -> ``D`` ``[E, nnz]`` (block-sparse, stored order).

        ``harmonics(lmax, unit_vectors [M, 3]) -> [M, (lmax+1)^2]`` evaluates the harmonics (default:
        :func:`mlff.so3.spherical_harmonics.spherical_harmonics`; the edge frame passes the kernel op).
        """
        dtype = rotation.dtype
        rotated = torch.einsum("eij,kj->eki", rotation, self.points.to(dtype))  # [E, P, 3]
        if harmonics is None:
            sh = spherical_harmonics(self.lmax, rotated, normalize=False)
        else:
            sh = harmonics(self.lmax, rotated.reshape(-1, 3)).view(*rotated.shape[:2], (self.lmax + 1) ** 2)
        padded = torch.einsum("ekr,krw->erw", sh[..., self.row_lm], self.inverse.to(dtype))  # [E, rows, 2L+1]
        return padded.flatten(1).index_select(1, self.valid)
