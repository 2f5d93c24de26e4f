"""EquiformerV2's edge-degree embedding: initial l > 0 node features from the neighbours."""

from __future__ import annotations

import torch
from torch import nn

from mlff.nn.chunking import EdgeChunk, over_edge_chunks
from mlff.nn.edge_features import EdgeFeatures
from mlff.nn.radial import RadialMLP


class EdgeDegreeEmbedding(nn.Module):
    """A radial MLP gives m = 0 edge-frame coefficients of every degree (the other orders are
    zero); they are rotated to the global frame, multiplied by the envelope, summed over the
    neighbours of each atom and divided by the average number of neighbours."""

    def __init__(
        self,
        channels: int,
        lmax: int,
        num_species: int,
        edge_channels: int = 128,
        num_basis: int = 128,
        avg_degree: float = 1.0,
    ):
        super().__init__()
        self.lmax, self.channels, self.avg_degree = lmax, channels, float(avg_degree)
        self.edge_features = EdgeFeatures(num_species, edge_channels, num_basis)
        self.radial = RadialMLP([self.edge_features.num_features, edge_channels, edge_channels, (lmax + 1) * channels])

    def forward(self, species, frame, basis, envelope, edge_index, num_nodes: int) -> torch.Tensor:
        total = over_edge_chunks(self.embed, frame, edge_index[1], num_nodes, species, basis, envelope, edge_index)
        return total / self.avg_degree

    def embed(self, frame, chunk: EdgeChunk, species, basis, envelope, edge_index) -> torch.Tensor:
        """The (undivided) sums into the chunk's atoms over its edges, whose frames are ``frame``."""
        receiver, edges = chunk.receivers(edge_index[1]), chunk.edges
        m0 = self.radial(self.edge_features(basis[edges], species, edge_index[:, edges]))
        # the m = 0 rows come first in the m-major layout
        m0 = m0.view(-1, self.lmax + 1, self.channels)
        return frame.rotate_back(m0, receiver, chunk.count, weight=envelope[edges, None])
