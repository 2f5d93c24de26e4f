"""Triton implementations of the hot ops, registered as ``torch.library`` ops (``mlff::*``).

Imported only when the Triton backend is chosen (:mod:`mlff.kernels`); runs on CUDA, or on the
CPU through Triton's interpreter when ``TRITON_INTERPRET=1`` was set before Triton was imported.
"""

from mlff.kernels.triton import rotation as _rotation
from mlff.kernels.triton.common import LAUNCHES, reset_launches
from mlff.kernels.triton.grid import grid_mlp, grid_silu
from mlff.kernels.triton.harmonics import spherical_harmonics
from mlff.kernels.triton.rotation import rotation_grad
from mlff.kernels.triton.segment import enveloped_softmax, gather, segment_sum

__all__ = ["LAUNCHES", "enveloped_softmax", "gather", "grid_mlp", "grid_silu", "reset_launches", "rotate", "rotate_back",
           "rotation_grad", "segment_sum", "spherical_harmonics"]


def rotate(d, x, index, lmax: int, mmax: int, rows: int, cache: dict | None = None, scale=None):
    """``mlff::rotate`` (the blocks are used as they are: nothing to cache)."""
    return _rotation.rotate(d, x, index, lmax, mmax, rows, scale)


def rotate_back(d, y, index, num_nodes: int, lmax: int, mmax: int, cache: dict | None = None, weight=None):
    """``mlff::rotate_back``."""
    return _rotation.rotate_back(d, y, index, num_nodes, lmax, mmax, weight)
