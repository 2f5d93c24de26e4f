"""The batched driver: each structure follows the trajectory it would follow alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.constraints import FixAtoms
from ase.io import read
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE

from mlff.calculator import MLFFCalculator
from mlff.compat import thermalize_momenta
from mlff.dynamics.batched import BatchedForces, relax, run_md
from mlff.errors import StructureError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network


@pytest.fixture(scope="module")
def model():
    # An untrained network has no short-range repulsion. With EquiformerV2's own norms and grid-MLP FFN
    # and this seed its random surface keeps the atoms apart over the runs below; with rms_norm_sh and no
    # logit LayerNorm ethanol's H atoms fall onto their neighbours within 250 Langevin steps, and with the
    # gated FFN ethanol's total energy swings by 0.27 eV in 30 NVE steps of 1 fs. What is tested here is
    # the driver, so the surface only has to keep the structures intact.
    torch.manual_seed(0)
    network = build_network(preset="small", species=[1, 6, 8, 29], cutoff=4.0, num_layers=1, channels=8,
                            attn_hidden=8, ffn_hidden=8, edge_channels=8, num_basis=8, norm="layer_norm_sh",
                            attn_alpha_norm="layer_norm", ffn_activation="grid_mlp")
    return EnergyModel(network, e0={1: -13.6, 6: -1029.5, 8: -2041.3, 29: -1.7}, scale=3.0).double()


def calculator(model):
    return MLFFCalculator(model, dtype="float64")


def structures():
    """A molecule, a slab with fixed atoms (constraints) and a periodic cell, each moving."""
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0, a=3.6)
    # O down at the site, C 0.75 Å above the Cu atom (not mlff.testing.structures.co_on_cu111): this random
    # surface relaxes the upright CO into a collapse, and the FIRE paths of an upright CO with the pair
    # repulsion run long enough for batch and alone to part by 2.6e-7 Å of rounding. A driver test input.
    add_adsorbate(slab, molecule("CO"), 1.9, "ontop", mol_index=0)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    copper = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    result = [molecule("CH3CH2OH"), slab, copper]
    for k, atoms in enumerate(result):
        atoms.rattle(0.05, seed=k)
        thermalize_momenta(atoms, temperature_K=400, rng=np.random.default_rng(k))
    return result


def test_nve_batch_equals_ase_velocity_verlet_alone(model, tmp_path):
    batch = structures()
    paths = [tmp_path / f"s{k}.xyz" for k in range(len(batch))]
    run = run_md(batch, calculator(model), timestep=1.0, steps=30, trajectories=paths, interval=10)
    assert run.evaluations == 31  # one model call per step for every structure together
    for k, alone in enumerate(structures()):
        alone.calc = calculator(model)
        VelocityVerlet(alone, timestep=1.0 * units.fs).run(30)
        np.testing.assert_allclose(batch[k].positions, alone.positions, rtol=0, atol=1e-9)
        np.testing.assert_allclose(batch[k].get_momenta(), alone.get_momenta(), rtol=0, atol=1e-9)
        assert run.energies[k][-1] == pytest.approx(alone.get_potential_energy(), abs=1e-8)
        frames = read(paths[k], ":")
        assert len(frames) == 4 and np.allclose(frames[-1].positions, batch[k].positions)
    assert np.ptp(run.totals[0]) < 5e-3  # NVE: the molecule's total energy holds


def test_langevin_structure_follows_the_same_path_with_or_without_the_others(model):
    batch = structures()
    run_md(batch, calculator(model), timestep=1.0, steps=20, ensemble="langevin", temperature=[300, 600, 900],
           friction=0.02, seed=[5, 6, 7])
    alone = structures()[1]
    run_md([alone], calculator(model), timestep=1.0, steps=20, ensemble="langevin", temperature=600, friction=0.02,
           seed=6)
    np.testing.assert_allclose(batch[1].positions, alone.positions, rtol=0, atol=1e-9)
    fixed = batch[1].constraints[0].index
    assert np.array_equal(batch[1].positions[fixed], structures()[1].positions[fixed])  # fixed atoms stay put


def test_langevin_replicas_reach_their_target_temperature(model):
    replicas = [molecule("CH3CH2OH") for _ in range(8)]
    run = run_md(replicas, calculator(model), timestep=0.5, steps=250, ensemble="langevin", temperature=500,
                 friction=0.1, seed=1)
    kinetic = np.array([np.array(t) - np.array(e) for t, e in zip(run.totals, run.energies)])[:, 100:]
    temperature = kinetic.mean() / (1.5 * units.kB * 9)
    # 8 replicas x 150 steps of a 9-atom molecule: the mean is within about 5 % of the target
    assert 425 < temperature < 575, temperature


def test_relax_batch_equals_ase_fire_alone(model):
    batch = structures()
    run = relax(batch, calculator(model), fmax=0.05, steps=300)
    for k, alone in enumerate(structures()):
        alone.calc = calculator(model)
        optimizer = FIRE(alone, logfile=None)
        converged = optimizer.run(fmax=0.05, steps=300)
        assert run.converged[k] == converged and run.relax_steps[k] == optimizer.nsteps
        np.testing.assert_allclose(batch[k].positions, alone.positions, rtol=0, atol=1e-8)
    assert all(run.converged)
    assert run.evaluations == max(run.relax_steps) + 1  # converged structures leave the batch


def test_bad_structures_are_named(model):
    broken = structures()
    broken[2].positions[3] = np.nan
    with pytest.raises(StructureError, match="structure 2"):
        BatchedForces(calculator(model), broken)
    with pytest.raises(StructureError, match="no structures"):
        run_md([], calculator(model), timestep=1.0, steps=1)
