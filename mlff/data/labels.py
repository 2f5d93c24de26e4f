"""Where labels live on an ``ase.Atoms``.

mlff keeps reference labels the way ASE does: in a ``SinglePointCalculator`` attached to the
structure, under the standard names ``energy`` (eV), ``forces`` (eV/Å, [N, 3]) and ``stress``
(eV/Å³, Voigt order xx yy zz yz xz xy, ASE's sign convention). Readers map whatever keys a file uses
onto these names; everything downstream (graphs, statistics, training) only reads them here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

LABELS = ("energy", "forces", "stress")


@dataclass(frozen=True)
class LabelKeys:
    """Names under which a file stores each label (``info``/``arrays`` keys or calculator results)."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"


def set_labels(atoms: Atoms, energy=None, forces=None, stress=None) -> Atoms:
    """Attach the given labels to ``atoms`` as a SinglePointCalculator (in place; returns atoms)."""
    results = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
    if stress is not None:
        results["stress"] = voigt_stress(stress)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def get_labels(atoms: Atoms) -> dict:
    """The standard labels stored on ``atoms`` (only those present). Never triggers a calculation."""
    results = getattr(atoms.calc, "results", None) or {}
    return {k: results[k] for k in LABELS if k in results and results[k] is not None}


def voigt_stress(stress) -> np.ndarray:
    """Stress as the 6-vector ASE uses, from either a 6-vector or a 3x3 matrix."""
    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (6,):
        return s
    if s.size == 9:
        return full_3x3_to_voigt_6_stress(s.reshape(3, 3))
    raise ValueError(f"stress must have 6 or 9 components, got shape {s.shape}")


def full_stress(stress) -> np.ndarray:
    """Stress as a symmetric 3x3 matrix from a 6-vector (Voigt) or a 3x3 matrix."""
    s = np.asarray(stress, dtype=np.float64)
    if s.size == 9:
        return s.reshape(3, 3)
    return voigt_6_to_full_3x3_stress(voigt_stress(s))
