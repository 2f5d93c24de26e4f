"""A small two-block model (float64) and the periodic structures the LAMMPS bridges are checked on.

The model has the ZBL pair repulsion up to the covalent-radius sum, which reaches the structures' C-O
and Cu-Cu neighbours, so that its split over owned and ghost atoms is checked too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.testing.structures import co_on_cu111

ELEMENTS = ["Cu", "C", "O"]


@pytest.fixture(scope="session")
def model():
    torch.manual_seed(0)
    network = build_network(preset="small", species=[6, 8, 29], cutoff=4.0, num_layers=2, channels=8, lmax=2,
                            mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8,
                            edge_channels=8, num_basis=8, repulsion=1.0)
    return EnergyModel(network, e0={6: -1.5, 8: -2.0, 29: -0.5}, scale=2.0).double().eval()


def slab():
    """CO on a periodic Cu(111) slab (periodic in x and y only)."""
    atoms = co_on_cu111()
    atoms.rattle(0.05, seed=1)
    return atoms


def bulk_cell():
    """A strained, sheared (triclinic), rattled fcc Cu box, periodic in x, y and z. The cell stays lower
    triangular, LAMMPS's own form, so that positions and forces need no rotation on the way in."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    atoms.set_cell(atoms.cell @ (np.eye(3) + np.array([[0.01, 0, 0], [0.05, -0.01, 0], [0.03, 0.02, 0.02]])),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    return atoms


STRUCTURES = {"slab": slab, "bulk": bulk_cell}
