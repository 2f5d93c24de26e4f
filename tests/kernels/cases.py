"""Inputs for the kernel tests: small, odd sizes, with the corner cases the issue lists."""

from __future__ import annotations

import torch

from mlff.so3.grid import SphereGrid
from mlff.so3.layout import m_major_index, wigner_rows
from mlff.so3.rotation import WignerBlocks, edge_rotation

#: (lmax, mmax) pairs: every lmax 1..6, mmax from 0 to lmax
DEGREES = [(1, 0), (1, 1), (2, 2), (3, 1), (4, 2), (5, 3), (6, 1)]

#: graphs as (num_nodes, edge_index): several edges per receiver, an isolated atom (node 3 of 7), one
#: edge, no edges
GRAPHS = {
    "graph": (7, [[0, 1, 2, 4, 5, 6, 0, 2, 5], [1, 0, 0, 0, 6, 5, 2, 1, 1]]),
    "single-edge": (2, [[0], [1]]),
    "no-edges": (3, [[], []]),
}


def graph(name: str) -> tuple[int, torch.Tensor]:
    n, edges = GRAPHS[name]
    return n, torch.tensor(edges, dtype=torch.long).view(2, -1)


def frame(num_edges: int, lmax: int, mmax: int, dtype, seed: int = 0) -> torch.Tensor:
    """Block-sparse Wigner-D of random edge vectors, ``[E, nnz]``."""
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(num_edges, 3, generator=g, dtype=torch.float64)
    return WignerBlocks(lmax, mmax)(edge_rotation(vectors)).to(dtype) if num_edges else torch.zeros(
        0, wigner_rows(lmax, mmax).nnz, dtype=dtype)


def randn(*shape, dtype, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def grid_matrices(lmax: int, mmax: int, dtype, resolution: int | None = None):
    """An edge-frame (m-major, truncated) sphere grid's ``to_grid``, ``from_grid``."""
    resolution = resolution or 2 * lmax + 2
    grid = SphereGrid(lmax, resolution, resolution, index=m_major_index(lmax, mmax))
    return grid.to_grid_mat.to(dtype), grid.from_grid_mat.to(dtype)
