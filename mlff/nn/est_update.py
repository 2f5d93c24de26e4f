"""EST's update block: spherical attention plus a hybrid mixture of experts, in place of
EquiformerV2's feed-forward network.

Given (normalised) node features ``h`` ``[N, K, C]``:

* the values of ``h`` at the S sampling points, ``g = to_points(h)`` ``[N, S, C]``;
* spherical attention among the points with a residual, ``a = g + attention(g)``;
* spherical experts: point-wise MLPs (pre-LN, ``C -> H -> C``, SiLU) on ``a``;
* steerable experts: degree-wise linear, gate activation, degree-wise linear on ``h``;
* dense softmax gating over all experts from the l = 0 features (no top-k, no balance loss:
  the EST paper found dense gating best).

The output is ``sum_i w_i steer_i(h) + from_points(sum_j w_j sph_j(a))``; the caller adds it to the
residual stream. ``from_points`` is the least-squares fit of :class:`~mlff.so3.fibonacci.SphereSampling`,
so the only departure from exact equivariance is the aliasing of the point-wise nonlinearities,
which shrinks as the point set grows and becomes more uniform (``mlff bench est-equivariance``).
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.errors import ConfigError
from mlff.nn.feed_forward import FeedForward
from mlff.nn.spherical_attention import SphericalAttention
from mlff.so3.fibonacci import SphereSampling


class ESTUpdate(nn.Module):
    def __init__(
        self,
        channels: int,
        hidden: int,
        lmax: int,
        sampling: SphereSampling,
        heads: int = 1,
        steerable_experts: int = 2,
        spherical_experts: int = 2,
        orientation_degree: int = 4,
    ):
        super().__init__()
        if steerable_experts + spherical_experts < 1:
            raise ConfigError("EST needs at least one expert")
        self.sampling = sampling
        self.n_steerable = steerable_experts
        self.attention = SphericalAttention(channels, sampling.points, heads, orientation_degree)
        self.steerable = nn.ModuleList(
            FeedForward(channels, hidden, channels, lmax, activation="gate") for _ in range(steerable_experts)
        )
        self.spherical = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels))
            for _ in range(spherical_experts)
        )
        self.gate = nn.Sequential(
            nn.LayerNorm(channels), nn.Linear(channels, channels), nn.SiLU(),
            nn.Linear(channels, steerable_experts + spherical_experts),
        )

    def expert_weights(self, h: torch.Tensor) -> torch.Tensor:
        """Dense gating: a softmax over all experts from each node's l = 0 features, ``[N, experts]``
        (steerable experts first)."""
        return torch.softmax(self.gate(h[:, 0]), -1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weights = self.expert_weights(h)
        out = h.new_zeros(h.shape)
        for i, expert in enumerate(self.steerable):
            out = out + weights[:, i, None, None] * expert(h)
        if self.spherical:
            g = self.sampling.to_points(h)
            a = g + self.attention(g)
            mixed = sum(weights[:, self.n_steerable + j, None, None] * expert(a) for j, expert in enumerate(self.spherical))
            out = out + self.sampling.from_points(mixed)
        return out
