"""EMPP's position-prediction head: where is the masked atom, seen from one of its neighbours?

From the features ``f_k`` of a neighbour k of the masked atom (An et al., ICLR 2025, Eqs. 10-14):

1. an equivariant two-layer MLP: layer norm, degree-wise linear, gate activation, then the
   tensor product with an embedding of the masked atom's species (for a scalar embedding the
   Clebsch-Gordan product is a channel-wise outer product) and a degree-wise linear to ``out``
   channels per degree;
2. the radius distribution: a softmax over ``bins`` distances from the ``out`` l = 0 channels;
3. the direction distribution: the ``out`` channels evaluated on sphere points (their spherical
   harmonic expansion), a point-wise MLP ``out -> 16 -> 1`` (SiLU), and a softmax over the points.

Both logits are divided by the temperature ``tau``. Steps 1 and 3 commute with rotations, so the
direction logits of a rotated structure at ``R x`` equal the original logits at ``x`` exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.nn.activation import GateActivation
from mlff.nn.norm import equivariant_norm
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.fibonacci import fibonacci_points
from mlff.so3.layout import degrees
from mlff.so3.spherical_harmonics import spherical_harmonics


class PositionHead(nn.Module):
    def __init__(
        self,
        channels: int,
        lmax: int,
        hidden: int = 64,
        out: int = 32,
        species_channels: int = 16,
        bins: int = 128,
        sphere_points: int = 10_000,
        tau: float = 0.1,
    ):
        super().__init__()
        self.lmax, self.tau = lmax, tau
        self.norm = equivariant_norm("layer_norm_sh", lmax, channels)
        self.linear1 = SO3Linear(channels, hidden, lmax)
        self.gates = nn.Linear(channels, lmax * hidden)
        self.act = GateActivation(degrees(lmax), hidden)
        self.species = nn.Linear(channels, species_channels)
        self.linear2 = SO3Linear(hidden * species_channels, out, lmax)
        self.radius = nn.Linear(out, bins)
        self.sphere_mlp = nn.Sequential(nn.Linear(out, 16), nn.SiLU(), nn.Linear(16, 1))
        self.register_buffer("points", fibonacci_points(sphere_points), persistent=False)

    def basis(self, points: torch.Tensor) -> torch.Tensor:
        """Spherical harmonics ``[S, (lmax+1)^2]`` that evaluate coefficients at ``points``."""
        return spherical_harmonics(self.lmax, points)

    def forward(
        self, features: torch.Tensor, masked_embedding: torch.Tensor, points: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbour features ``[P, K, C]`` and masked-atom embeddings ``[P, C]`` ->
        radius logits ``[P, bins]`` and direction logits ``[P, S]`` (already divided by tau)."""
        x = self.norm(features)
        h = self.act(self.gates(x[:, 0]), self.linear1(x))  # [P, K, hidden]
        e = self.species(masked_embedding)  # [P, species_channels]
        h = self.linear2((h.unsqueeze(-1) * e[:, None, None, :]).flatten(2))  # [P, K, out]
        radius = self.radius(h[:, 0]) / self.tau
        points = self.points if points is None else points
        first, act, last = self.sphere_mlp
        # The MLP's first layer is linear in the channels and the sphere evaluation linear in the
        # coefficients, so they commute: mix channels first and never hold [P, S, out] in memory.
        mixed = torch.einsum("pkc,hc->pkh", h, first.weight)
        on_sphere = torch.matmul(self.basis(points.to(h.dtype)), mixed) + first.bias  # [P, S, 16]
        direction = last(act(on_sphere))[..., 0] / self.tau
        return radius, direction
