"""EST's spherical attention: per node, a Transformer attention among the values of its features
at S points of the sphere (An et al., 2025, "Equivariant Spherical Transformer").

Each point's channel vector is layer-normalised (pre-LN), mapped to queries, keys and values by
point-wise linear maps, and attends to the other points of the same node. A relative orientation
embedding makes the attention depend on the angle between the two points: a learned function of
``cos(angle) = p_i . p_j``, expanded in Legendre polynomials up to ``orientation_degree`` with one
set of coefficients per head, added to the attention logits. It depends on the points only through
their mutual angles, so rotating the point set leaves it unchanged (the EST code concatenates the
point coordinates to q and k, which is the degree-1 term of this expansion).

The self-attention form takes Q, K and V from one set of point values; the cross-attention form
takes Q from one and K, V from another (e.g. a neighbour's features in a message block).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def legendre_table(cosines: torch.Tensor, degree: int) -> torch.Tensor:
    """``P_0..P_degree`` at ``cosines``: ``[degree + 1, *cosines.shape]`` (Bonnet's recursion)."""
    table = [torch.ones_like(cosines), cosines]
    for n in range(1, degree):
        table.append(((2 * n + 1) * cosines * table[n] - n * table[n - 1]) / (n + 1))
    return torch.stack(table[: degree + 1])


class SphericalAttention(nn.Module):
    """``[N, S, C]`` point values -> ``[N, S, C]`` attention output (no residual: the caller adds it)."""

    def __init__(self, channels: int, points: torch.Tensor, heads: int = 1, orientation_degree: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.head_dim = heads, channels // heads
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        points = torch.as_tensor(points, dtype=torch.float64)
        cosines = (points @ points.T).clamp(-1.0, 1.0)
        # float64, like every other geometric table; it follows the module's dtype from there
        self.register_buffer("legendre", legendre_table(cosines, orientation_degree), persistent=False)
        # random at initialisation, so that even an untrained layer tells angles apart
        self.orientation = nn.Parameter(torch.randn(heads, orientation_degree + 1) / math.sqrt(orientation_degree + 1))

    def forward(self, values: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over ``values``; with ``context`` (same shape), Q from ``values`` and K, V
        from ``context`` (cross-attention)."""
        n, s, c = values.shape
        q_in = self.norm_q(values)
        kv_in = self.norm_kv(values if context is None else context)
        split = lambda t: t.reshape(n, s, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(q_in)), split(self.key(kv_in)), split(self.value(kv_in))
        bias = torch.einsum("hd,dij->hij", self.orientation, self.legendre.to(values.dtype))
        # written out rather than F.scaled_dot_product_attention: forces need its double backward
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        out = torch.softmax(logits, -1) @ v
        return self.out(out.transpose(1, 2).reshape(n, s, c))
