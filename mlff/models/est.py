"""EST (An et al., 2025, "Equivariant Spherical Transformer for Efficient Molecular Modeling"):
EquiformerV2's graph-attention message block followed by EST's update block (spherical attention
and a hybrid mixture of steerable and spherical experts, :mod:`mlff.nn.est_update`) in place of
the feed-forward network. Everything else (embeddings, smooth cutoff, edge frames, energy head,
conservative forces and stress through :class:`~mlff.models.energy_model.EnergyModel`) is shared
with :class:`~mlff.models.equiformer_v2.EquiformerV2`.

The sampling points are a Fibonacci lattice of ``sphere_points`` points (default ``(2 lmax + 1)
(2 lmax + 2)``, as in the EST code, which exceeds ``(2 lmax)^2``), optionally refined by
``refine_steps`` rounds of repulsion at construction; ``sampling="equiangular"`` uses an
e3nn-style product grid of about as many points instead (for the equivariance comparison).
``message="spherical"`` replaces the graph attention by EST's own message block, spherical
cross-attention between the atoms' features and the edge direction
(:mod:`mlff.nn.spherical_message`; the paper's one-layer expressivity model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from mlff.config import choose
from mlff.errors import ConfigError
from mlff.models.equiformer_v2 import EquiformerV2, EquiformerV2Config
from mlff.nn.est_update import ESTUpdate
from mlff.nn.spherical_message import SphericalMessage
from mlff.so3.fibonacci import SphereSampling
from mlff.so3.grid import grid_points


Sampling = Literal["fibonacci", "equiangular"]  # keys of SAMPLINGS
Message = Literal["graph_attention", "spherical"]  # keys of EST.MESSAGES


@dataclass
class ESTConfig(EquiformerV2Config):
    sphere_points: int | None = None  # default (2 lmax + 1)(2 lmax + 2)
    refine_steps: int = 0  # repulsion rounds applied once to the Fibonacci lattice
    sampling: Sampling = "fibonacci"
    est_heads: int = 1
    steerable_experts: int = 2
    spherical_experts: int = 2
    expert_hidden: int = 32
    orientation_degree: int = 4
    message: Message = "graph_attention"  # or "spherical": EST's cross-attention message block

    def __post_init__(self):
        super().__post_init__()
        points = default_points(self.lmax) if self.sphere_points is None else self.sphere_points
        if points < (2 * self.lmax) ** 2:
            raise ConfigError(f"sphere_points={points} is below (2 lmax)^2 = {(2 * self.lmax) ** 2}")
        for name in ("est_heads", "expert_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if min(self.refine_steps, self.steerable_experts, self.spherical_experts, self.orientation_degree) < 0:
            raise ConfigError("refine_steps, steerable_experts, spherical_experts and orientation_degree must be >= 0")
        if self.steerable_experts + self.spherical_experts < 1:
            raise ConfigError("EST needs at least one expert (steerable_experts + spherical_experts >= 1)")
        if self.channels % self.est_heads:
            raise ConfigError(f"channels ({self.channels}) must be divisible by est_heads ({self.est_heads})")


def default_points(lmax: int) -> int:
    """The EST code's point count for degree ``lmax``: ``(2 lmax + 1)(2 lmax + 2) > (2 lmax)^2``."""
    return (2 * lmax + 1) * (2 * lmax + 2)


def fibonacci_sampling(lmax: int, n: int, refine_steps: int) -> SphereSampling:
    return SphereSampling(lmax, n, refine_steps)


def equiangular_sampling(lmax: int, n: int, refine_steps: int) -> SphereSampling:
    """An e3nn-style product grid of about ``n`` points (for the equivariance comparison)."""
    res = math.ceil(math.sqrt(n))
    return SphereSampling(lmax, points=grid_points(res, res), refine_steps=refine_steps)


SAMPLINGS = {"fibonacci": fibonacci_sampling, "equiangular": equiangular_sampling}


def make_sampling(lmax: int, points: int | None, refine_steps: int = 0, kind: str = "fibonacci") -> SphereSampling:
    n = points if points is not None else default_points(lmax)
    if n < (2 * lmax) ** 2:
        raise ConfigError(f"sphere_points={n} is below (2 lmax)^2 = {(2 * lmax) ** 2}")
    return choose(SAMPLINGS, kind, "sampling")(lmax, n, refine_steps)


class EST(EquiformerV2):
    """Per-atom energies from species and edge vectors, with EST update blocks."""

    name = "est"
    config_class = ESTConfig

    def shared_sampling(self, cfg: ESTConfig) -> SphereSampling:
        if not hasattr(self, "sampling"):  # one point set, shared by every block
            self.sampling = make_sampling(cfg.lmax, cfg.sphere_points, cfg.refine_steps, cfg.sampling)
        return self.sampling

    def spherical_message(self, cfg: ESTConfig, num_species: int) -> nn.Module:
        return SphericalMessage(cfg.channels, cfg.lmax, num_species, self.shared_sampling(cfg), cfg.est_heads,
                                cfg.edge_channels, cfg.num_basis, cfg.avg_degree, cfg.orientation_degree)

    #: message blocks by name; None keeps EquiformerV2's graph attention
    MESSAGES = {"graph_attention": None, "spherical": spherical_message}

    def make_message(self, cfg: ESTConfig, num_species: int) -> nn.Module | None:
        build = choose(self.MESSAGES, cfg.message, "message")
        return None if build is None else build(self, cfg, num_species)

    def make_update(self, cfg: ESTConfig) -> nn.Module:
        return ESTUpdate(cfg.channels, cfg.expert_hidden, cfg.lmax, self.shared_sampling(cfg), cfg.est_heads,
                         cfg.steerable_experts, cfg.spherical_experts, cfg.orientation_degree)
