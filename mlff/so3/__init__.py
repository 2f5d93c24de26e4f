"""Pure-PyTorch SO(3) math: spherical harmonics, rotations and Wigner-D, layouts, sphere grids.

Conventions follow e3nn (the test oracle): real harmonics, polar axis y, l-major coefficients.
"""

from mlff.so3.fibonacci import fibonacci_points
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import degrees, lm_index, m_major_index, m_major_sizes, truncated_index
from mlff.so3.rotation import WignerD, edge_rotation, random_rotation
from mlff.so3.spherical_harmonics import num_coefficients, spherical_harmonics

__all__ = [
    "SphereGrid",
    "WignerD",
    "degrees",
    "edge_rotation",
    "fibonacci_points",
    "lm_index",
    "m_major_index",
    "m_major_sizes",
    "num_coefficients",
    "random_rotation",
    "spherical_harmonics",
    "truncated_index",
]
