"""EMPP: equivariant masked position prediction (An et al., ICLR 2025), as an auxiliary loss and
as label-free pre-training.

For ``n`` masks per structure, ``n`` copies of the batch are built, copy j with the j-th masked
atom of each structure removed (its node and all its edges vanish; nothing of its position
remains). All copies run through the backbone together, as one batched graph. Every node of a
copy is told, at the input of every block, which species was removed (the model's atom embedding
followed by a 2-layer MLP, on l = 0) and, with labels, the structure's energy (Gaussian basis and
a linear map, on l = 0) and the removed atom's force (spherical harmonics times a Gaussian basis
of its magnitude, and a degree-wise linear map, on all degrees). Every remaining atom within the
cutoff of the removed one then predicts, with :class:`~mlff.nn.position_head.PositionHead`, the
distance and direction at which the removed atom sits; the loss is the KL divergence to
Gaussian (radius) and von-Mises-like (direction) targets, averaged over neighbours and masks.

Periodic images are handled like any other neighbour: an image of atom k at ``p_k + S @ cell``
is a separate neighbour with its own target vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mlff.data.graph import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.nn.position_head import PositionHead
from mlff.kernels import segment_sum
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.layout import degrees
from mlff.so3.spherical_harmonics import spherical_harmonics
from mlff.train.config import EMPPConfig


@dataclass
class MaskedBatch:
    """``n`` masked copies of a batch as one graph, plus who was masked and who predicts it."""

    species: torch.Tensor  # [M] species indices of the remaining nodes
    vectors: torch.Tensor  # [E', 3] edge vectors among them
    edge_index: torch.Tensor  # [2, E']
    node_mask: torch.Tensor  # [M] which mask (0..G-1) each node's copy belongs to
    masked_atom: torch.Tensor  # [G] index of the removed atom in the original batch
    masked_graph: torch.Tensor  # [G] its structure in the original batch
    pair_node: torch.Tensor  # [P] a remaining node within the cutoff of the removed atom...
    pair_mask: torch.Tensor  # [P] ...of this mask...
    pair_vector: torch.Tensor  # [P, 3] ...and the vector from it to the removed atom

    @property
    def num_masks(self) -> int:
        return self.masked_atom.shape[0]


def choose_masks(graph: AtomicGraph, n_masks: int, generator: torch.Generator) -> list[torch.Tensor]:
    """For each copy j < n_masks, the atoms removed in it: at most one per structure, all distinct.

    A structure of N atoms takes part in ``min(n_masks, N - 1)`` copies (a lone atom in none), with
    atoms drawn uniformly without replacement.
    """
    counts = graph.atoms_per_graph.tolist()
    starts = graph.ptr[:-1].tolist()
    picks = [torch.randperm(c, generator=generator)[: min(n_masks, c - 1)] + s for c, s in zip(counts, starts)]
    return [torch.stack([p[j] for p in picks if len(p) > j]) for j in range(n_masks) if any(len(p) > j for p in picks)]


def mask_batch(graph: AtomicGraph, species: torch.Tensor, masks: list[torch.Tensor]) -> MaskedBatch:
    """Build the masked copies of ``graph`` (species indices ``species``) for the atoms in ``masks``."""
    device = species.device
    vectors = graph.edge_vectors().detach()
    sender, receiver = graph.edge_index
    n_atoms = graph.num_atoms
    parts = {k: [] for k in ("species", "vectors", "edges", "node_mask", "atom", "graph", "p_node", "p_mask", "p_vec")}
    node_offset = mask_offset = 0
    for removed in masks:
        removed = removed.to(device)
        mask_of_graph = torch.full((graph.num_graphs,), -1, dtype=torch.long, device=device)
        mask_of_graph[graph.batch[removed]] = torch.arange(len(removed), device=device) + mask_offset
        keep = mask_of_graph[graph.batch] >= 0
        keep[removed] = False
        new_index = torch.cumsum(keep, 0) - 1 + node_offset
        kept_edge = keep[sender] & keep[receiver]
        parts["species"].append(species[keep])
        parts["vectors"].append(vectors[kept_edge])
        parts["edges"].append(torch.stack([new_index[sender[kept_edge]], new_index[receiver[kept_edge]]]))
        parts["node_mask"].append(mask_of_graph[graph.batch[keep]])
        parts["atom"].append(removed)
        parts["graph"].append(graph.batch[removed])
        is_removed = torch.zeros(n_atoms, dtype=torch.bool, device=device)
        is_removed[removed] = True
        pair = is_removed[receiver] & keep[sender]
        parts["p_node"].append(new_index[sender[pair]])
        parts["p_mask"].append(mask_of_graph[graph.batch[receiver[pair]]])
        parts["p_vec"].append(-vectors[pair])  # r_ij points from the removed atom i to neighbour j
        node_offset += int(keep.sum())
        mask_offset += len(removed)
    cat = lambda key, dim=0: torch.cat(parts[key], dim)  # noqa: E731
    return MaskedBatch(cat("species"), cat("vectors"), cat("edges", 1), cat("node_mask"), cat("atom"), cat("graph"),
                       cat("p_node"), cat("p_mask"), cat("p_vec"))


def _gaussians(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    spacing = centres[1] - centres[0]
    return torch.exp(-0.5 * ((x[..., None] - centres) / spacing) ** 2)


class EMPP(nn.Module):
    """Conditioning encoders, the position head, targets and the KL loss of EMPP.

    ``energy_stats`` are the mean and std of ``(E - sum E0) / N`` on the training set and
    ``force_rms`` the training force RMS; they scale the label encodings.
    """

    def __init__(self, cfg: EMPPConfig, channels: int, lmax: int, cutoff: float,
                 energy_stats: tuple[float, float] | None = None, force_rms: float | None = None):
        super().__init__()
        self.cfg, self.lmax = cfg, lmax
        self.type_mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.energy_linear = nn.Linear(64, channels)
        self.force_linear = SO3Linear(16, channels, lmax, bias=False)
        self.head = PositionHead(channels, lmax, cfg.hidden_channels, cfg.out_channels, bins=cfg.bins,
                                 sphere_points=cfg.sphere_points, tau=cfg.tau)
        mean, std = energy_stats if energy_stats and energy_stats[1] else (0.0, 1.0)
        self.register_buffer("energy_mean", torch.tensor(float(mean)))
        self.register_buffer("energy_std", torch.tensor(float(std)))
        self.register_buffer("force_scale", torch.tensor(float(force_rms or 1.0)))
        self.register_buffer("energy_centres", torch.linspace(-3.0, 3.0, 64), persistent=False)
        self.register_buffer("force_centres", torch.linspace(0.0, 4.0, 16), persistent=False)
        self.register_buffer("bins", torch.linspace(cfg.r_min, cutoff, cfg.bins), persistent=False)

    # ------------------------------------------------------------------ conditioning
    def condition(self, model: EnergyModel, graph: AtomicGraph, batch: MaskedBatch, dtype) -> torch.Tensor:
        """Per-mask conditioning ``[G, (lmax+1)^2, C]``: species, and the labels when present."""
        network = model.network
        masked_species = network.species(graph.numbers[batch.masked_atom])
        scalars = self.type_mlp(network.atom_embedding(masked_species))
        if self.cfg.encode_energy and graph.energy is not None:
            n = graph.atoms_per_graph.to(torch.float64)
            e0 = segment_sum(model.e0[graph.numbers], graph.batch, graph.num_graphs)
            per_atom = ((graph.energy.double() - e0) / n - self.energy_mean) / self.energy_std
            scalars = scalars + self.energy_linear(_gaussians(per_atom[batch.masked_graph].to(dtype), self.energy_centres))
        out = torch.cat([scalars.unsqueeze(1), scalars.new_zeros(len(scalars), (self.lmax + 1) ** 2 - 1, scalars.shape[1])], 1)
        if self.cfg.encode_forces and graph.forces is not None:
            f = graph.forces[batch.masked_atom].to(dtype) / self.force_scale.to(dtype)
            norm = torch.linalg.vector_norm(f, dim=1, keepdim=True)
            power = norm ** degrees(self.lmax).to(f.device)  # |f|^l Y_lm(f/|f|): finite and smooth at f = 0
            sh = spherical_harmonics(self.lmax, f / norm.clamp_min(1e-12)) * power
            radial = _gaussians(norm[:, 0], self.force_centres)
            out = out + self.force_linear(sh.unsqueeze(-1) * radial.unsqueeze(1))
        return out

    # ------------------------------------------------------------------ targets and loss
    def targets(self, vectors: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log target distributions: radius over the bins, direction over ``points``."""
        distance = torch.linalg.vector_norm(vectors, dim=1)
        radius = -0.5 * ((self.bins.to(vectors.dtype) - distance[:, None]) / self.cfg.sigma) ** 2
        # sum_lm Y_lm(r) Y_lm(x) with integral-normalised harmonics = sum_l (2l+1)/(4 pi) P_l(r.x)
        kernel = spherical_harmonics(self.lmax, vectors) @ spherical_harmonics(self.lmax, points.to(vectors.dtype)).T
        direction = kernel / (4 * math.pi * self.cfg.target_tau)
        return torch.log_softmax(radius, 1), torch.log_softmax(direction, 1)

    def forward(self, model: EnergyModel, graph: AtomicGraph, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The EMPP loss of a batch (``loss``, and its ``radius`` and ``direction`` parts)."""
        network = model.network
        species = network.species(graph.numbers)
        masks = choose_masks(graph, self.cfg.masks, generator)
        batch = mask_batch(graph, species, masks)
        dtype = graph.positions.dtype
        if not len(batch.pair_node):
            zero = sum(p.sum() for p in self.parameters()) * 0.0  # keeps every parameter in the graph
            return {"loss": zero, "radius": zero.detach(), "direction": zero.detach()}
        condition = self.condition(model, graph, batch, dtype)
        # index_select, not x[idx]: its backward (index_add) is deterministic on the CPU, which exact resume needs
        features = network.features(batch.species, batch.vectors, batch.edge_index, condition.index_select(0, batch.node_mask))
        masked_embedding = network.atom_embedding(network.species(graph.numbers[batch.masked_atom]))
        radius_logits, direction_logits = self.head(features.index_select(0, batch.pair_node), masked_embedding.index_select(0, batch.pair_mask))
        log_q_radius, log_q_direction = self.targets(batch.pair_vector, self.head.points)
        kl_radius = _kl(log_q_radius, torch.log_softmax(radius_logits, 1))
        kl_direction = _kl(log_q_direction, torch.log_softmax(direction_logits, 1))
        # average over the neighbours of each mask, then over the masks (paper Eqs. 8, 16, 18)
        pairs = torch.bincount(batch.pair_mask, minlength=batch.num_masks).to(dtype)
        used = pairs > 0
        per_mask = lambda kl: (segment_sum(kl, batch.pair_mask, batch.num_masks)[used] / pairs[used]).mean()  # noqa: E731
        radius, direction = per_mask(kl_radius), per_mask(kl_direction)
        return {"loss": radius + direction, "radius": radius.detach(), "direction": direction.detach()}


def _kl(log_q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per row, from log-probabilities."""
    return (log_q.exp() * (log_q - log_p)).sum(1)
