"""OC20's metrics, as its leaderboard scores them (Chanussot et al., ACS Catal. 2021).

S2EF (structure to energy and forces), over structures with energy and force labels:

* ``energy_mae`` (eV per structure, not per atom);
* ``force_mae`` (eV/Å) over the components of the *free* atoms: atoms held by ``FixAtoms`` (OC20's
  fixed sub-surface layers) are left out, as OC20 leaves them out;
* ``force_cos``: the mean cosine between predicted and reference force vectors of the free atoms;
* ``efwt``: the fraction of structures whose energy is within 0.02 eV and every free atom's force
  components within 0.03 eV/Å.

IS2RS / IS2RE (relaxations), from relaxed structures and the reference relaxations:

* ``adwt``: for each structure the mean distance of its free atoms from their reference positions
  (minimum image in periodic directions); the fraction of structures below a threshold, averaged over
  thresholds 0.01, 0.011, ... 0.499 Å;
* ``energy_mae`` of the relaxed energies (eV), ``ewt``: the fraction within 0.02 eV.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.geometry import find_mic

from mlff.data.graph import AtomicGraph
from mlff.errors import DataError

ENERGY_THRESHOLD = 0.02  # eV
FORCE_THRESHOLD = 0.03  # eV/Å
ADWT_THRESHOLDS = np.arange(0.01, 0.5, 0.001)  # Å


@dataclass
class S2EFMetrics:
    """Accumulates the S2EF metrics over batches of predictions (``update``), then ``result``."""

    energy_errors: list[float] = field(default_factory=list)
    force_errors: list[np.ndarray] = field(default_factory=list)  # [free atoms, 3] per structure
    cosines: list[np.ndarray] = field(default_factory=list)

    def update(self, out: dict, graph: AtomicGraph) -> None:
        if graph.energy is None or graph.forces is None:
            raise DataError("S2EF metrics need energy and force labels on every structure")
        energy = (out["energy"].detach().double() - graph.energy.double()).cpu().numpy()
        pred, ref = out["forces"].detach().double().cpu().numpy(), graph.forces.double().cpu().numpy()
        free = np.ones(graph.num_atoms, bool) if graph.fixed is None else ~graph.fixed.cpu().numpy()
        ptr = graph.ptr.cpu().numpy()
        for b in range(graph.num_graphs):
            atoms = np.arange(ptr[b], ptr[b + 1])[free[ptr[b]:ptr[b + 1]]]
            p, r = pred[atoms], ref[atoms]
            self.energy_errors.append(float(energy[b]))
            self.force_errors.append(p - r)
            norms = np.linalg.norm(p, axis=1) * np.linalg.norm(r, axis=1)
            self.cosines.append((p * r).sum(1) / np.maximum(norms, 1e-8))  # as torch.cosine_similarity

    def result(self) -> dict[str, float]:
        energy = np.abs(self.energy_errors)
        forces = np.concatenate(self.force_errors) if self.force_errors else np.zeros((0, 3))
        within = [e < ENERGY_THRESHOLD and (not len(f) or np.abs(f).max() < FORCE_THRESHOLD)
                  for e, f in zip(energy, self.force_errors)]
        return {"structures": len(energy), "free_atoms": len(forces), "energy_mae": float(energy.mean()),
                "force_mae": float(np.abs(forces).mean()) if len(forces) else float("nan"),
                "force_cos": float(np.concatenate(self.cosines).mean()) if len(forces) else float("nan"),
                "efwt": float(np.mean(within))}


def free_mask(atoms: Atoms) -> np.ndarray:
    """True for the atoms no ``FixAtoms`` constraint holds."""
    free = np.ones(len(atoms), bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            free[constraint.get_indices()] = False
    return free


def mean_distance(relaxed: Atoms, reference: Atoms) -> float:
    """The mean distance (Å) of ``relaxed``'s free atoms from their ``reference`` positions, minimum image."""
    if len(relaxed) != len(reference) or not np.array_equal(relaxed.numbers, reference.numbers):
        raise ValueError("relaxed and reference structures must have the same atoms in the same order")
    _, lengths = find_mic(relaxed.positions - reference.positions, reference.cell, reference.pbc)
    return float(lengths[free_mask(reference)].mean())


def adwt(distances) -> float:
    """Average distance within threshold: the fraction of ``distances`` below each of
    :data:`ADWT_THRESHOLDS`, averaged over the thresholds."""
    d = np.asarray(distances, dtype=float)[:, None]
    return float((d < ADWT_THRESHOLDS[None, :]).mean())


def relaxation_metrics(relaxed: list[Atoms], reference: list[Atoms], energies, reference_energies,
                       converged, steps) -> dict[str, float]:
    """IS2RS/IS2RE metrics of relaxations against reference relaxations (see the module docstring)."""
    distances = [mean_distance(a, b) for a, b in zip(relaxed, reference)]
    errors = np.abs(np.asarray(energies, float) - np.asarray(reference_energies, float))
    return {"structures": len(relaxed), "adwt": adwt(distances), "mean_distance": float(np.mean(distances)),
            "energy_mae": float(errors.mean()), "ewt": float((errors < ENERGY_THRESHOLD).mean()),
            "converged": float(np.mean(converged)), "mean_steps": float(np.mean(steps))}
