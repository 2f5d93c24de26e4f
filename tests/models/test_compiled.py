"""The compiled network (torch.compile, dynamic sizes) gives the eager results and compiles once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

from mlff.calculator import MLFFCalculator
from mlff.compat import thermalize_momenta
from mlff.data import AtomicGraph, collate
from mlff.models.energy_model import EnergyModel
from mlff.models.equiformer_v2 import EquiformerV2
from mlff.testing.structures import ethanol

TINY = dict(num_layers=1, channels=8, lmax=2, mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4,
            ffn_hidden=32, edge_channels=8, num_basis=8, grid_resolution=8, avg_degree=8.0)
# ffn_hidden >= 32 as in every preset: inductor decomposes an [N, 1] @ [1, C] product (the energy
# head's backward) when N + C <= 32, and that choice would bound the atom count of the compiled graph


def tiny_model(dtype=torch.float64) -> EnergyModel:
    torch.manual_seed(0)
    model = EnergyModel(EquiformerV2(species=[1, 6, 8, 29], cutoff=3.5, **TINY), e0={1: -13.6, 6: -1029.0})
    with torch.no_grad():  # an untrained network's outputs are near zero; spread the weights
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.to(dtype).eval()


def structures():
    copper = bulk("Cu", "fcc", a=3.61, cubic=True)
    copper.rattle(0.05, seed=1)
    bigger = bulk("Cu", "fcc", a=3.61) * (2, 2, 1)
    bigger.rattle(0.1, seed=2)
    stretched = ethanol()
    stretched.positions[0] += [0.4, 0.0, 0.0]
    return [ethanol(), stretched, copper, bigger]


def test_compiled_model_equals_eager_and_compiles_once_for_every_size():
    eager, compiled = tiny_model(), tiny_model().set_compiled(True)
    graphs = [AtomicGraph.from_atoms(a, eager.cutoff, dtype=torch.float64) for a in structures()]
    graphs.append(collate(graphs))
    sizes = {(g.positions.shape[0], g.num_edges) for g in graphs}
    assert len(sizes) == len(graphs)  # every graph has its own atom and edge counts
    for graph in graphs:
        stress = bool(graph.pbc.all())
        expected, got = eager(graph, stress=stress), compiled(graph, stress=stress)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-10, atol=1e-10, equal_nan=True)
    assert compiled.compilations == 1, f"{compiled.compilations} graphs compiled for {len(graphs)} sizes"


def test_compiled_float32_agrees_with_eager_to_float32_round_off():
    """Compiled kernels sum in other orders: in float32 both stray from float64 by the same amount."""
    reference, eager, compiled = tiny_model(), tiny_model(torch.float32), tiny_model(torch.float32).set_compiled(True)
    for atoms in structures():
        stress = bool(atoms.pbc.all())
        truth = reference(AtomicGraph.from_atoms(atoms, reference.cutoff, dtype=torch.float64), stress=stress)
        graph = AtomicGraph.from_atoms(atoms, reference.cutoff, dtype=torch.float32)
        plain, fast = eager(graph, stress=stress), compiled(graph, stress=stress)
        scale = float(truth["forces"].abs().max())
        eager_error = float((plain["forces"].double() - truth["forces"]).abs().max())
        compiled_error = float((fast["forces"].double() - truth["forces"]).abs().max())
        assert eager_error < 2e-5 * scale  # what float32 round-off is here (about 1e-5 of the largest force)
        assert compiled_error < 5e-5 * scale, (compiled_error, eager_error, scale)
        assert abs(float(fast["energy"][0] - truth["energy"][0])) < 1e-5 * max(1.0, float(truth["energy"].abs()[0]))


def test_training_stays_eager():
    """A double backward (force training) does not go through the compiled graph."""
    model = tiny_model().set_compiled(True).train()
    graph = AtomicGraph.from_atoms(ethanol(), model.cutoff, dtype=torch.float64)
    out = model(graph, create_graph=True)
    out["forces"].square().sum().backward()
    assert model.compilations == 0
    assert all(p.grad is not None for p in model.network.blocks.parameters())


def test_md_with_a_compiled_calculator_never_recompiles_and_follows_the_eager_one():
    """300 steps of hot NVE: the edge count changes from step to step, the compiled graph does not."""
    atoms = ethanol()
    thermalize_momenta(atoms, temperature_K=1500, rng=np.random.default_rng(0))
    atoms.calc = MLFFCalculator(tiny_model(), compile=True)
    edges = set()
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.attach(lambda: edges.add(len(atoms.calc.neighbors(atoms).receivers)), interval=1)
    dyn.run(300)
    assert len(edges) > 5, f"the edge count hardly changed ({sorted(edges)}): the test would prove nothing"
    assert atoms.calc.model.compilations == 1
    eager = MLFFCalculator(tiny_model())
    np.testing.assert_allclose(atoms.get_forces(), eager.get_forces(atoms.copy()), rtol=1e-9, atol=1e-9)
    assert atoms.get_potential_energy() == pytest.approx(eager.get_potential_energy(atoms.copy()), abs=1e-9)
