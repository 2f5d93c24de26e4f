"""Losses and metrics on energies (per atom), forces and stress."""

from __future__ import annotations

import torch

from mlff.data.graph import AtomicGraph
from mlff.train.config import LossConfig


def _penalty(diff: torch.Tensor, kind: str, delta: float) -> torch.Tensor:
    if kind == "mse":
        return diff.pow(2).mean()
    if kind == "mae":
        return diff.abs().mean()
    return torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), delta=delta)


def weights_at(cfg: LossConfig, progress: float) -> tuple[float, float, float]:
    """(energy, forces, stress) weights at training progress in [0, 1] (MACE-style stage two)."""
    if cfg.stage_two_fraction is not None and progress >= cfg.stage_two_fraction:
        return cfg.stage_two_energy_weight, cfg.stage_two_forces_weight, cfg.stress_weight
    return cfg.energy_weight, cfg.forces_weight, cfg.stress_weight


def stress_mask(graph: AtomicGraph) -> torch.Tensor | None:
    """Which structures of ``graph`` carry a stress label (None when none can)."""
    if graph.stress is None:
        return None
    return torch.isfinite(graph.stress).all(-1).all(-1)


def loss_terms(out: dict, graph: AtomicGraph, cfg: LossConfig, progress: float = 0.0) -> dict[str, torch.Tensor]:
    """Weighted loss and its parts. Energies are compared per atom; stress only where labelled."""
    w_e, w_f, w_s = weights_at(cfg, progress)
    natoms = graph.atoms_per_graph.to(out["energy"].dtype)
    terms = {}
    e_diff = (out["energy"] - graph.energy.to(out["energy"].dtype)) / natoms
    terms["energy"] = _penalty(e_diff, cfg.kind, cfg.huber_delta)
    total = w_e * terms["energy"]
    if w_f and graph.forces is not None:
        f_diff = out["forces"] - graph.forces.to(out["forces"].dtype)
        if graph.atom_weights is not None:
            f_diff = f_diff * graph.atom_weights[:, None]
        terms["forces"] = _penalty(f_diff, cfg.kind, cfg.huber_delta)
        total = total + w_f * terms["forces"]
    labelled = stress_mask(graph)
    if w_s and labelled is not None and labelled.any() and "stress" in out:
        s_diff = out["stress"][labelled] - graph.stress[labelled].to(out["stress"].dtype)
        terms["stress"] = _penalty(s_diff, cfg.kind, cfg.huber_delta)
        total = total + w_s * terms["stress"]
    terms["total"] = total
    return terms


class Metrics:
    """Accumulates energy (meV/atom), force (meV/Å) and stress (meV/Å³) MAE and RMSE over batches."""

    def __init__(self):
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

    def result(self) -> dict[str, float]:
        out = {"energy_mae": self.e_abs / max(self.n_struct, 1), "energy_rmse": (self.e_sq / max(self.n_struct, 1)) ** 0.5}
        if self.n_force:
            out.update(force_mae=self.f_abs / self.n_force, force_rmse=(self.f_sq / self.n_force) ** 0.5)
        if self.n_stress:
            out.update(stress_mae=self.s_abs / self.n_stress, stress_rmse=(self.s_sq / self.n_stress) ** 0.5)
        return out
