"""EquiformerV2 (Liao et al., 2024) as a smooth, conservative per-atom energy model.

Faithful to the architecture: atom embedding plus edge-degree embedding, then blocks of
(separable layer norm -> SO(2) graph attention with re-normalised attention -> residual,
separable layer norm -> feed-forward network with a grid MLP -> residual), a final norm and an
energy head. Changes, each needed for forces that are the exact gradient of a smooth energy:

* every radial dependence is multiplied by a polynomial cutoff envelope, and the attention
  softmax is weighted by it (no jumps when a neighbour crosses the cutoff; no neighbour cap);
* edge frames are built from a pole-safe, deterministic rotation and exact Wigner-D matrices
  that stay in the autograd graph (fairchem detaches them and rolls frames at random);
* the energy head reads every degree of the final features (:mod:`mlff.nn.heads`);
* the nonlinearity inside the message block is a gate by default (``edge_activation="gate"``):
  it commutes with rotations about the edge, so the energy does not depend on the frame's roll
  and is a single smooth function of the positions. ``"s2"`` restores fairchem's separable S2
  activation in the edge frame, whose grid aliasing makes the energy depend (slightly) on the
  roll and therefore on an unavoidable discontinuity of any frame choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

import torch
from ase.data import chemical_symbols
from torch import nn

from mlff.errors import ConfigError
from mlff.nn.attention import SO2GraphAttention
from mlff.nn.edge_frame import EdgeFrame
from mlff.nn.embedding import EdgeDegreeEmbedding
from mlff.nn.feed_forward import FeedForward
from mlff.nn.heads import EnergyHead
from mlff.nn.norm import equivariant_norm
from mlff.nn.radial import PolynomialEnvelope, radial_basis
from mlff.nn.repulsion import PairRepulsion, repulsion_reach
from mlff.models.species import SpeciesIndex


Norm = Literal["layer_norm_sh", "rms_norm_sh"]  # keys of mlff.nn.norm.NORMS
Basis = Literal["gaussian", "bessel"]  # keys of mlff.nn.radial.RADIAL_BASES
EdgeActivation = Literal["gate", "s2"]  # keys of mlff.nn.attention.EDGE_ACTIVATIONS
AlphaNorm = Literal["layer_norm", "soft_layer_norm", "none"]  # keys of mlff.nn.attention.ALPHA_NORMS
FFNActivation = Literal["grid_mlp", "s2", "gate"]  # keys of mlff.nn.feed_forward.FFN_ACTIVATIONS


@dataclass
class EquiformerV2Config:
    species: list[int] = field(default_factory=lambda: [1, 6, 7, 8])
    cutoff: float = 5.0
    num_layers: int = 2
    channels: int = 32
    lmax: int = 3
    mmax: int = 2
    heads: int = 4
    attn_hidden: int = 32
    alpha_channels: int = 16
    value_channels: int = 8
    ffn_hidden: int = 32
    edge_channels: int = 32
    num_basis: int = 32
    basis: Basis = "gaussian"
    grid_resolution: int = 10
    # rms_norm_sh, not EquiformerV2's separable layer norm (layer_norm_sh, still an option): that one
    # divides l > 0 features that vanish by symmetry by sqrt(power + 1e-5), so near a perfect crystal the
    # energy bends on a scale of 1e-3 Å (mlff.nn.norm.SeparableLayerNorm); rms_norm_sh does not, and was
    # as accurate (ethanol test force MAE 13.9 vs 14.5 meV/Å, README)
    norm: Norm = "rms_norm_sh"
    edge_activation: EdgeActivation = "gate"
    # none, not EquiformerV2's LayerNorm of each edge's logit features (layer_norm, still an option): that
    # division is the strongest nonlinearity along a bond scan (15x the roughness of its input in a
    # trained ethanol model); without it bond scans stay within 2-4x of GFN2-xTB's third derivative
    # instead of up to 57x, for 5-13 % of test force MAE (README)
    attn_alpha_norm: AlphaNorm = "none"
    ffn_activation: FFNActivation = "grid_mlp"
    avg_degree: float = 10.0
    envelope_exponent: int = 5
    # ZBL pair repulsion switched off at repulsion x (covalent-radius sum); 0: none (mlff.nn.repulsion).
    # A wall where the data has no pairs: 0.6 lies below the closest pairs of the slab data (0.61)
    repulsion: float = 0.0

    def __post_init__(self):
        bad = [z for z in self.species if not 1 <= int(z) < len(chemical_symbols)]
        if not self.species or bad:
            raise ConfigError(f"species must be a non-empty list of atomic numbers 1..{len(chemical_symbols) - 1}, "
                              f"got {self.species}")
        positive = ("cutoff", "num_layers", "channels", "lmax", "heads", "attn_hidden", "alpha_channels",
                    "value_channels", "ffn_hidden", "edge_channels", "num_basis", "avg_degree", "envelope_exponent")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.repulsion >= 0:
            raise ConfigError(f"repulsion must be >= 0 (0: no pair repulsion), got {self.repulsion!r}")
        reach = repulsion_reach(self.species, self.repulsion)
        if reach >= self.cutoff:
            raise ConfigError(f"repulsion={self.repulsion} reaches {reach:.2f} Å for these species, beyond the "
                              f"cutoff of {self.cutoff} Å")
        if not 0 <= self.mmax <= self.lmax:
            raise ConfigError(f"mmax must be in 0..lmax={self.lmax}, got {self.mmax}")
        if self.uses_grid:
            grid_mmax = self.lmax if self.ffn_activation != "gate" else self.mmax  # the FFN's grid is full
            if not (self.grid_resolution > self.lmax and self.grid_resolution > 2 * grid_mmax):
                raise ConfigError(f"grid_resolution={self.grid_resolution} is too coarse for lmax={self.lmax}: "
                                  f"it must exceed {max(self.lmax, 2 * grid_mmax)}")

    @property
    def uses_grid(self) -> bool:
        """Whether any layer samples the sphere grid (``grid_resolution`` applies, and equivariance holds
        up to its aliasing); with gate activations in the FFN and on the edges it holds exactly."""
        return self.ffn_activation != "gate" or self.edge_activation == "s2"


class TransformerBlock(nn.Module):
    """norm -> message -> residual, norm -> update -> residual. The message is EquiformerV2's graph
    attention and the update its feed-forward network unless other modules are given (EST's,
    :mod:`mlff.models.est`)."""

    def __init__(self, cfg: EquiformerV2Config, num_species: int, update: nn.Module | None = None,
                 message: nn.Module | None = None):
        super().__init__()
        self.norm1 = equivariant_norm(cfg.norm, cfg.lmax, cfg.channels)
        self.attention = message if message is not None else SO2GraphAttention(
            cfg.channels, cfg.lmax, cfg.mmax, num_species, cfg.heads, cfg.attn_hidden, cfg.alpha_channels,
            cfg.value_channels, cfg.edge_channels, cfg.num_basis, cfg.edge_activation, cfg.grid_resolution,
            cfg.attn_alpha_norm,
        )
        self.norm2 = equivariant_norm(cfg.norm, cfg.lmax, cfg.channels)
        self.ffn = update if update is not None else FeedForward(
            cfg.channels, cfg.ffn_hidden, cfg.channels, cfg.lmax, cfg.ffn_activation, cfg.grid_resolution)

    def forward(self, x, species, frame, basis, envelope, edge_index, count: int | None = None):
        """The block's output for the first ``count`` atoms (default all): the others (ghosts) only
        send messages."""
        count = x.shape[0] if count is None else count
        x = x[:count] + self.attention(self.norm1(x), species, frame, basis, envelope, edge_index, count=count)
        return x + self.ffn(self.norm2(x))


class EquiformerV2(nn.Module):
    """Per-atom energies from species and edge vectors."""

    name = "equiformer_v2"
    config_class = EquiformerV2Config

    def __init__(self, config: EquiformerV2Config | None = None, **overrides):
        super().__init__()
        cfg = config or self.config_class()
        if overrides:
            cfg = self.config_class(**{**asdict(cfg), **overrides})
        self.config = cfg
        self.species = SpeciesIndex(cfg.species)
        n_species = len(self.species)
        self.cutoff = float(cfg.cutoff)
        self.basis = radial_basis(cfg.basis, cfg.cutoff, cfg.num_basis)
        self.envelope = PolynomialEnvelope(cfg.cutoff, cfg.envelope_exponent)
        self.edge_frame = EdgeFrame(cfg.lmax, cfg.mmax)
        self.atom_embedding = nn.Embedding(n_species, cfg.channels)
        self.edge_degree = EdgeDegreeEmbedding(
            cfg.channels, cfg.lmax, n_species, cfg.edge_channels, cfg.num_basis, cfg.avg_degree
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg, n_species, self.make_update(cfg), self.make_message(cfg, n_species))
            for _ in range(cfg.num_layers)
        )
        self.final_norm = equivariant_norm(cfg.norm, cfg.lmax, cfg.channels)
        self.head = EnergyHead(cfg.channels, cfg.ffn_hidden, cfg.lmax, cfg.ffn_activation, cfg.grid_resolution)
        # added to the energies by EnergyModel, outside the network's learned scale
        self.repulsion = PairRepulsion(cfg.species, cfg.repulsion) if cfg.repulsion > 0 else None

    def make_update(self, cfg) -> nn.Module | None:
        """The update module of each block (None: EquiformerV2's feed-forward network)."""
        return None

    def make_message(self, cfg, num_species: int) -> nn.Module | None:
        """The message module of each block (None: EquiformerV2's graph attention)."""
        return None

    def forward(self, species: torch.Tensor, vectors: torch.Tensor, edge_index: torch.Tensor,
                exchange: Callable[[torch.Tensor], torch.Tensor] | None = None,
                n_owned: int | None = None) -> torch.Tensor:
        """Species indices ``[N]``, edge vectors ``[E, 3]`` and ``edge_index [2, E]`` -> energies ``[N]``
        (``[n_owned]`` with an ``exchange``, see :meth:`features`)."""
        return self.head(self.features(species, vectors, edge_index, exchange=exchange, n_owned=n_owned))

    def features(self, species: torch.Tensor, vectors: torch.Tensor, edge_index: torch.Tensor,
                 condition: torch.Tensor | None = None,
                 exchange: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 n_owned: int | None = None) -> torch.Tensor:
        """The final (normalised) node features ``[N, (lmax+1)^2, channels]``.

        ``condition`` (same shape, optional) is added to the node features at the input of every
        block; EMPP uses it to tell each node which atom was masked and what its labels are.

        Engines that split a structure into ``n_owned`` owned atoms (first) and ghosts (LAMMPS across
        MPI ranks; :mod:`mlff.models.local`) give an ``exchange``: it takes the owned atoms' features
        and returns every atom's, each ghost with its owner's row. It runs before every block, the
        first included (the edge-degree embedding has already mixed in each atom's neighbours, so the
        receptive field is (blocks + 1) x cutoff). Every edge must then go into an owned atom, and
        the features, like everything per atom, are computed for the owned atoms only.
        """
        n = species.shape[0] if exchange is None else n_owned
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        frame = self.edge_frame(vectors)
        basis = self.basis(lengths)
        envelope = self.envelope(lengths)
        scalars = self.atom_embedding(species[:n]).unsqueeze(1)
        x = torch.cat([scalars, scalars.new_zeros(n, (self.config.lmax + 1) ** 2 - 1, scalars.shape[2])], 1)
        x = x + self.edge_degree(species, frame, basis, envelope, edge_index, n)
        for block in self.blocks:
            if condition is not None:
                x = x + condition
            x = block(x if exchange is None else exchange(x), species, frame, basis, envelope, edge_index, count=n)
        return self.final_norm(x)
