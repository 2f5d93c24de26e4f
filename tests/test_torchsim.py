"""The TorchSim adapter: TorchSim's own conformance check, the calculator's numbers, NVE through TorchSim."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlff.calculator import MLFFCalculator
from mlff.errors import StructureError
from mlff.models.energy_model import EnergyModel
from mlff.models.equiformer_v2 import EquiformerV2

ts = pytest.importorskip("torch_sim", reason="TorchSim (torch-sim-atomistic) is not installed")
from torch_sim.models.interface import validate_model_outputs  # noqa: E402

from mlff.torchsim import MLFFModel  # noqa: E402

TINY = dict(num_layers=1, channels=8, lmax=2, mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4,
            ffn_hidden=8, edge_channels=8, num_basis=8, grid_resolution=8, avg_degree=20.0)


def energy_model(species=(8, 14, 26, 29)) -> EnergyModel:
    torch.manual_seed(0)
    network = EquiformerV2(species=list(species), cutoff=4.0, **TINY)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return EnergyModel(network, e0={8: -430.0, 29: -1050.0}).double().eval()


def systems():
    copper = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)
    copper.rattle(0.05, seed=1)
    oxide = bulk("Cu", "fcc", a=3.7, cubic=True)
    oxide.numbers[1] = 8
    oxide.rattle(0.08, seed=2)
    return [copper, oxide]


def test_torchsim_conformance():
    """TorchSim's validator: shapes, dtypes, no mutation of the state, batched = one at a time."""
    validate_model_outputs(MLFFModel(energy_model(), device="cpu", compute_stress=True), torch.device("cpu"),
                           torch.float64)


def test_batch_equals_the_calculator():
    model = MLFFModel(energy_model(), device="cpu", compute_stress=True)
    structures = systems()
    out = model(ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64))
    start = 0
    for k, atoms in enumerate(structures):
        atoms.calc = MLFFCalculator(energy_model(), device="cpu")
        n = len(atoms)
        assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(out["forces"][start:start + n].numpy(), atoms.get_forces(), atol=1e-10)
        np.testing.assert_allclose(out["stress"][k].numpy(), atoms.get_stress(voigt=False), atol=1e-10)
        start += n


def nve_spread(model, atoms, dt_fs: float, steps: int) -> tuple[float, float]:
    """Largest standard deviation of the total energy over the run (eV) and the mean kinetic energy, two replicas."""
    state = ts.io.atoms_to_state([atoms, atoms.copy()], torch.device("cpu"), torch.float64)
    init, step = ts.integrators.nve(model, dt=torch.tensor(dt_fs * 1e-3 * ts.units.MetalUnits.time),
                                    kT=torch.tensor(300.0 * ts.units.MetalUnits.temperature))
    torch.manual_seed(0)
    state = init(state)
    totals, kinetic = [], None
    for _ in range(steps):
        state = step(state)
        kinetic = ts.calc_kinetic_energy(masses=state.masses, momenta=state.momenta, system_idx=state.system_idx)
        totals.append((state.energy + kinetic).numpy())
    return float(np.array(totals).std(axis=0).max()), float(kinetic.mean())


def test_nve_through_torchsim_conserves_energy():
    """TorchSim's velocity Verlet with mlff forces: the total energy's fluctuation is small and falls as
    dt² (conservative forces; a wrong force or sign would leave an error that does not). The untrained
    network is stiff, so the steps are short enough to be in the dt² regime (at 1 fs they are not)."""
    model = MLFFModel(energy_model(), device="cpu")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=4)
    coarse, kinetic = nve_spread(model, atoms, 0.25, 80)
    fine, _ = nve_spread(model, atoms, 0.125, 160)
    assert kinetic > 0.5  # the atoms move (32 atoms at about 300 K)
    assert coarse < 1e-4 * kinetic
    assert 3.5 < coarse / fine < 4.5, (coarse, fine)


def test_bad_input_is_named():
    model = MLFFModel(energy_model(species=(29,)), device="cpu")
    oxide = systems()[1]
    with pytest.raises(StructureError, match=r"element O \(Z=8\) is not among the model's species"):
        model(ts.io.atoms_to_state([oxide], torch.device("cpu"), torch.float64))
    copper = systems()[0]
    state = ts.io.atoms_to_state([copper], torch.device("cpu"), torch.float64)
    state.positions[3, 1] = float("nan")
    with pytest.raises(StructureError, match="NaN"):
        model(state)
