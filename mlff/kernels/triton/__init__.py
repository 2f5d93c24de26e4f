"""Triton implementations of the hot ops, registered as ``torch.library`` ops (``mlff::*``).

Imported only when the Triton backend is chosen (:mod:`mlff.kernels`); runs on CUDA, or on the
CPU through Triton's interpreter when ``TRITON_INTERPRET=1`` was set before Triton was imported.
"""

from mlff.kernels.triton.common import LAUNCHES, reset_launches
from mlff.kernels.triton.grid import grid_silu
from mlff.kernels.triton.harmonics import spherical_harmonics
from mlff.kernels.triton.rotation import rotate, rotate_back, rotation_grad
from mlff.kernels.triton.segment import enveloped_softmax, gather, segment_sum

__all__ = ["LAUNCHES", "enveloped_softmax", "gather", "grid_silu", "reset_launches", "rotate", "rotate_back",
           "rotation_grad", "segment_sum", "spherical_harmonics"]
