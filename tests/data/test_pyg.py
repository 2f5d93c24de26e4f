"""AtomicGraph <-> torch-geometric: the same structures, labels and energies both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlff.data.graph import AtomicGraph
from mlff.data.labels import get_labels
from mlff.data.pyg import from_pyg, to_pyg
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from tests.data.test_lmdb import s2ef, slab

pyg = pytest.importorskip("torch_geometric.data", reason="torch-geometric is not installed (pip install 'mlff[oc20]')")


def edges(graph, b):
    """Structure ``b``'s edges as a set of (sender, receiver, shift) in its own atom numbering."""
    lo = int(graph.ptr[b])
    keep = graph.batch[graph.edge_index[1]] == b
    e, s = graph.edge_index[:, keep] - lo, graph.shifts[keep]
    return {(int(i), int(j), *map(int, t)) for i, j, t in zip(e[0], e[1], s)}


def test_round_trip_keeps_structures_labels_tags_fixed_atoms_and_edges():
    structures = [slab(0), slab(1)]
    graph = AtomicGraph.from_atoms(structures, cutoff=4.0, dtype=torch.float64)
    batch = to_pyg(graph)
    assert isinstance(batch, pyg.Batch) and batch.num_graphs == 2
    assert batch.natoms.tolist() == [13, 13] and batch.y.shape == (2,) and batch.cell.shape == (2, 3, 3)
    back = from_pyg(batch, cutoff=4.0, dtype=torch.float64)
    for name in ("positions", "numbers", "cell", "pbc", "ptr", "energy", "forces", "stress", "tags", "fixed"):
        torch.testing.assert_close(getattr(back, name), getattr(graph, name), rtol=0, atol=0)
    assert back.fixed.sum() == 8 and all(edges(back, b) == edges(graph, b) for b in range(2))


def test_a_model_gives_the_same_energy_and_forces_through_pyg():
    network = build_network("equiformer_v2", preset="small", species=[8, 29], num_layers=1, channels=8, lmax=2,
                            mmax=1, grid_resolution=6)
    model = EnergyModel(network, e0={8: -1.0, 29: -2.0}).double()
    graph = AtomicGraph.from_atoms([slab(0), slab(1)], cutoff=model.cutoff, dtype=torch.float64)
    direct = model(graph)
    through = model(from_pyg(to_pyg(graph), cutoff=model.cutoff, dtype=torch.float64))
    torch.testing.assert_close(through["energy"], direct["energy"], rtol=0, atol=1e-10)
    torch.testing.assert_close(through["forces"], direct["forces"], rtol=0, atol=1e-10)


def test_oc20_data_without_pbc_field_is_periodic_and_its_capped_edges_are_rebuilt():
    atoms = slab()
    fields = s2ef(atoms)
    fields["edge_index"] = torch.tensor([[0, 1], [1, 0]])  # a pipeline's own (capped) graph
    graph = from_pyg(pyg.Data(**fields), cutoff=4.0, dtype=torch.float64)
    assert graph.pbc.all() and graph.num_edges > 2
    assert edges(graph, 0) == edges(AtomicGraph.from_atoms(atoms, cutoff=4.0), 0)
    assert graph.energy.item() == pytest.approx(atoms.get_potential_energy())
    np.testing.assert_allclose(graph.forces.numpy(), get_labels(atoms)["forces"], atol=1e-6)  # fixed atoms too


def test_stress_of_a_periodic_cell_survives_the_round_trip():
    from ase.build import bulk

    from mlff.data.labels import set_labels

    cell = set_labels(bulk("Cu", "fcc", a=3.6, cubic=True), energy=-1.0, forces=np.zeros((4, 3)),
                      stress=[0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    graph = AtomicGraph.from_atoms(cell, cutoff=3.0, dtype=torch.float64)
    back = from_pyg(to_pyg(graph), cutoff=3.0, dtype=torch.float64)
    torch.testing.assert_close(back.stress, graph.stress, rtol=0, atol=0)
