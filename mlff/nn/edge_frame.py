"""Per-edge rotation into the local frame where the edge points along +y.

``EdgeFrame`` computes, once per forward pass, the Wigner-D rows that take l-major node
coefficients to the edge frame *and* to the m-major layout with ``|m| <= mmax``: this is the one
boundary where the layout changes. Every layer reuses the same matrices.
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.so3.layout import m_major_index
from mlff.so3.rotation import WignerD, edge_rotation


class EdgeFrame(nn.Module):
    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.wigner = WignerD(lmax, rows=m_major_index(lmax, mmax))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """Edge vectors ``[E, 3]`` -> rotation ``D [E, K_mmax, (lmax+1)^2]`` (differentiable)."""
        return self.wigner(edge_rotation(vectors))

    @staticmethod
    def rotate(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """l-major global-frame ``[E, (lmax+1)^2, C]`` -> m-major edge-frame ``[E, K_mmax, C]``."""
        return torch.bmm(d, x)

    @staticmethod
    def rotate_back(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """m-major edge-frame ``[E, K_mmax, C]`` -> l-major global-frame ``[E, (lmax+1)^2, C]``."""
        return torch.bmm(d.transpose(1, 2), y)
