"""Losses and metrics on energies (per atom), forces and stress.

A loss term is the mean penalty (squared, absolute or Huber) of its differences: per-atom energies
of the structures, force components (times the atom weights, where given; of the free atoms only with
``forces_on: free``), and stress components
of the structures that carry a stress label. :func:`penalty_sums` gives each term's sum and count,
so that a loss over many batches (the validation loss, :class:`Metrics`) is exactly the loss of one
batch holding them all.
"""

from __future__ import annotations

import torch

from mlff.data.graph import AtomicGraph
from mlff.train.config import LossConfig


def _penalty_sum(diff: torch.Tensor, kind: str, delta: float) -> torch.Tensor:
    if kind == "mse":
        return diff.pow(2).sum()
    if kind == "mae":
        return diff.abs().sum()
    return torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), delta=delta, reduction="sum")


def in_stage_two(cfg: LossConfig, progress: float) -> bool:
    """Whether the MACE-style second stage (other energy and force weights) is on at ``progress``."""
    return cfg.stage_two_fraction is not None and progress >= cfg.stage_two_fraction


def weights_at(cfg: LossConfig, progress: float) -> tuple[float, float, float]:
    """(energy, forces, stress) weights at training progress in [0, 1] (MACE-style stage two)."""
    if in_stage_two(cfg, progress):
        return cfg.stage_two_energy_weight, cfg.stage_two_forces_weight, cfg.stress_weight
    return cfg.energy_weight, cfg.forces_weight, cfg.stress_weight


def stress_mask(graph: AtomicGraph) -> torch.Tensor | None:
    """Which structures of ``graph`` carry a stress label (None when none can)."""
    if graph.stress is None:
        return None
    return torch.isfinite(graph.stress).all(-1).all(-1)


def penalty_sums(out: dict, graph: AtomicGraph, cfg: LossConfig,
                 weights: tuple[float, float, float]) -> dict[str, tuple[torch.Tensor, int]]:
    """(sum of penalties, number of differences) of each term that a loss with ``weights`` has."""
    w_e, w_f, w_s = weights
    natoms = graph.atoms_per_graph.to(out["energy"].dtype)
    e_diff = (out["energy"] - graph.energy.to(out["energy"].dtype)) / natoms
    sums = {"energy": (_penalty_sum(e_diff, cfg.kind, cfg.huber_delta), e_diff.numel())}
    if w_f and graph.forces is not None:
        f_diff = out["forces"] - graph.forces.to(out["forces"].dtype)
        if graph.atom_weights is not None:
            f_diff = f_diff * graph.atom_weights[:, None]
        if cfg.forces_on == "free" and graph.fixed is not None:
            f_diff = f_diff[~graph.fixed]
        if f_diff.numel():  # a share of fixed atoms only has no force term (not 0/0)
            sums["forces"] = (_penalty_sum(f_diff, cfg.kind, cfg.huber_delta), f_diff.numel())
    labelled = stress_mask(graph)
    if w_s and labelled is not None and labelled.any() and "stress" in out:
        s_diff = out["stress"][labelled] - graph.stress[labelled].to(out["stress"].dtype)
        sums["stress"] = (_penalty_sum(s_diff, cfg.kind, cfg.huber_delta), s_diff.numel())
    return sums


def weighted_total(terms: dict, weights: tuple[float, float, float]):
    """The loss from its (mean) terms."""
    w = dict(zip(("energy", "forces", "stress"), weights))
    total = w["energy"] * terms["energy"]
    for name in ("forces", "stress"):
        if name in terms:
            total = total + w[name] * terms[name]
    return total


def loss_terms(out: dict, graph: AtomicGraph, cfg: LossConfig, progress: float = 0.0) -> dict[str, torch.Tensor]:
    """Weighted loss (``total``) and its terms. Energies are compared per atom; stress only where labelled."""
    weights = weights_at(cfg, progress)
    terms = {name: total / count for name, (total, count) in penalty_sums(out, graph, cfg, weights).items()}
    terms["total"] = weighted_total(terms, weights)
    return terms


class Metrics:
    """Accumulates energy (meV/atom), force (meV/Å) and stress (meV/Å³) MAE and RMSE over batches.

    Given a loss config and the training progress, it also accumulates that loss (``loss`` in the
    result), exactly: each term is its summed penalty over all batches divided by its total count.
    """

    def __init__(self, loss: LossConfig | None = None, progress: float = 0.0):
        self.loss = loss
        self.weights = weights_at(loss, progress) if loss is not None else None
        self.loss_sums: dict[str, list[float]] = {}
        self.e_abs = self.e_sq = self.f_abs = self.f_sq = self.s_abs = self.s_sq = 0.0
        self.n_struct = self.n_force = self.n_stress = 0

    def update(self, out: dict, graph: AtomicGraph) -> None:
        natoms = graph.atoms_per_graph.double()
        e = ((out["energy"].detach().double() - graph.energy.double()) / natoms) * 1000
        self.e_abs += float(e.abs().sum())
        self.e_sq += float(e.pow(2).sum())
        self.n_struct += e.numel()
        if graph.forces is not None:
            f = (out["forces"].detach().double() - graph.forces.double()) * 1000
            self.f_abs += float(f.abs().sum())
            self.f_sq += float(f.pow(2).sum())
            self.n_force += f.numel()
        labelled = stress_mask(graph)
        if labelled is not None and labelled.any() and "stress" in out:
            s = (out["stress"].detach().double()[labelled] - graph.stress.double()[labelled]) * 1000
            self.s_abs += float(s.abs().sum())
            self.s_sq += float(s.pow(2).sum())
            self.n_stress += s.numel()
        if self.loss is not None:
            detached = {k: v.detach() for k, v in out.items()}
            for name, (total, count) in penalty_sums(detached, graph, self.loss, self.weights).items():
                acc = self.loss_sums.setdefault(name, [0.0, 0])
                acc[0], acc[1] = acc[0] + float(total), acc[1] + count

    def result(self) -> dict[str, float]:
        out = {"energy_mae": self.e_abs / max(self.n_struct, 1), "energy_rmse": (self.e_sq / max(self.n_struct, 1)) ** 0.5}
        if self.n_force:
            out.update(force_mae=self.f_abs / self.n_force, force_rmse=(self.f_sq / self.n_force) ** 0.5)
        if self.n_stress:
            out.update(stress_mae=self.s_abs / self.n_stress, stress_rmse=(self.s_sq / self.n_stress) ** 0.5)
        if self.loss_sums:
            out["loss"] = float(weighted_total({k: s / n for k, (s, n) in self.loss_sums.items()}, self.weights))
        return out
