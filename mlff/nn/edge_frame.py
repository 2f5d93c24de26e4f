"""Per-edge rotation into the local frame where the edge points along +y.

``EdgeFrame`` computes, once per forward pass, the Wigner-D rows that take l-major node
coefficients to the edge frame *and* to the m-major layout with ``|m| <= mmax``: this is the one
boundary where the layout changes. The rows are stored block-sparse (only each row's own degree,
:class:`mlff.so3.layout.WignerRows`) and every layer reuses them through :class:`Frame`, whose
rotations are the :mod:`mlff.kernels` ops (reference or Triton, chosen at run time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mlff import kernels
from mlff.nn.chunking import map_edge_rows
from mlff.so3.rotation import WignerBlocks, edge_rotation


@dataclass(frozen=True)
class Frame:
    """The edge frames of one graph: block-sparse Wigner-D ``d [E, nnz]`` for ``lmax``, ``mmax``."""

    d: torch.Tensor
    lmax: int
    mmax: int
    #: what a kernel implementation derives from ``d`` once per forward pass (see :func:`mlff.kernels.rotate`);
    #: None: derive it at each use
    cache: dict | None = field(default_factory=dict, compare=False, repr=False)

    def rotate(self, x: torch.Tensor, index: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Node features ``[N, (lmax+1)^2, C]`` gathered by ``index`` ``[S, E]`` -> m-major ``[E, K_mmax, S*C]``,
        times ``scale`` ``[E, num_pairs, S*C]`` if given (see :func:`mlff.kernels.rotate`)."""
        return kernels.rotate(self.d, x, index, self.lmax, self.mmax, cache=self.cache, scale=scale)

    def rotate_back(self, y: torch.Tensor, index: torch.Tensor | None = None, num_nodes: int | None = None,
                    weight: torch.Tensor | None = None):
        """m-major ``[E, rows, C]`` (the first ``rows >= lmax + 1`` rows; the m = 0 rows come first), times
        ``weight`` ``[E, G]`` per channel group if given -> l-major, summed into ``num_nodes`` nodes by
        ``index`` ``[E]``, or per edge if ``index`` is None (see :func:`mlff.kernels.rotate_back`)."""
        return kernels.rotate_back(self.d, y, index, num_nodes, self.lmax, self.mmax, cache=self.cache, weight=weight)

    def narrow(self, edges: slice | torch.Tensor) -> Frame:
        """The frames of some of the edges (a slice or an index tensor; see :mod:`mlff.nn.chunking`).
        They cache nothing: they are used inside recomputed code, which must redo what it did the first time."""
        return Frame(self.d[edges], self.lmax, self.mmax, cache=None)


class EdgeFrame(nn.Module):
    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.wigner = WignerBlocks(lmax, mmax)

    def forward(self, vectors: torch.Tensor) -> Frame:
        """Edge vectors ``[E, 3]`` -> their :class:`Frame` (differentiable in the vectors)."""
        # edge-wise, so large systems run it over chunks of edges (mlff.nn.chunking)
        return Frame(map_edge_rows(self.rows, vectors), self.lmax, self.mmax)

    def rows(self, vectors: torch.Tensor) -> torch.Tensor:
        """The block-sparse Wigner-D rows ``[E, nnz]`` of the edges ``vectors [E, 3]``."""
        return self.wigner(edge_rotation(vectors), kernels.spherical_harmonics)
