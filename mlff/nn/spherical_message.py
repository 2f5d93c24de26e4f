"""EST's message block: spherical cross-attention per edge (An et al., 2025, Sec. 3.3 and Fig. 3).

For each edge j -> i the query is a degree-wise linear map of the two atoms' features
``[x_j, x_i]``; the keys and values come from the edge's direction: its spherical harmonics
``Y_l(r_hat)`` weighted per degree and channel by a radial MLP of the distance and both species
(the same m = 0 edge-frame construction as the edge-degree embedding). Both are sampled at the S
points, the points of the query attend to the points of the edge
(:class:`~mlff.nn.spherical_attention.SphericalAttention` in its cross form), and the result is
fitted back to coefficients, multiplied by the cutoff envelope, summed over the neighbours of i,
divided by the average degree and mixed by a final degree-wise linear map.

It has the signature of :class:`~mlff.nn.attention.SO2GraphAttention`, so a transformer block
takes either. Like the update block it is equivariant up to the aliasing of the point-wise
operations; unlike it, the aliasing here depends on each edge's direction relative to the points.
That direction-dependent error is what lets one such layer tell apart orientations of k-fold
structures (k > lmax) that an exactly equivariant layer of the same degree cannot: the difference
it sees is its own symmetry error, and it shrinks with more points (``mlff bench est-kfold``).
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.kernels import segment_sum
from mlff.nn.edge_features import EdgeFeatures
from mlff.nn.radial import RadialMLP
from mlff.nn.so3_linear import SO3Linear
from mlff.nn.spherical_attention import SphericalAttention
from mlff.so3.fibonacci import SphereSampling


class SphericalMessage(nn.Module):
    def __init__(
        self,
        channels: int,
        lmax: int,
        num_species: int,
        sampling: SphereSampling,
        heads: int = 1,
        edge_channels: int = 32,
        num_basis: int = 32,
        avg_degree: float = 1.0,
        orientation_degree: int = 4,
    ):
        super().__init__()
        self.lmax, self.channels, self.avg_degree = lmax, channels, float(avg_degree)
        self.sampling = sampling
        self.edge_features = EdgeFeatures(num_species, edge_channels, num_basis)
        self.radial = RadialMLP([self.edge_features.num_features, edge_channels, (lmax + 1) * channels])
        self.query = SO3Linear(2 * channels, channels, lmax)
        self.attention = SphericalAttention(channels, sampling.points, heads, orientation_degree)
        self.proj = SO3Linear(channels, channels, lmax)

    def forward(self, x, species, frame, basis, envelope, edge_index, count: int | None = None) -> torch.Tensor:
        """The messages into the first ``count`` atoms (default all; every receiver must be among them)."""
        sender, receiver = edge_index
        weights = self.radial(self.edge_features(basis, species, edge_index)).view(-1, self.lmax + 1, self.channels)
        # sum_l Y_l(r_hat) w_l: the m = 0 edge-frame rows (first in the m-major layout) rotated back
        edge = frame.rotate_back(weights)
        query = self.query(torch.cat([x[sender], x[receiver]], dim=2))
        points = self.attention(self.sampling.to_points(query), self.sampling.to_points(edge))
        message = self.sampling.from_points(points) * envelope[:, None, None]
        count = x.shape[0] if count is None else count
        return self.proj(segment_sum(message, receiver, count) / self.avg_degree)
