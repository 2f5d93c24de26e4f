"""Chunked inference (mlff.nn.chunking): the same energies, forces and stress, far less kept memory."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from ase.build import bulk

from mlff.calculator import MLFFCalculator
from mlff.data import AtomicGraph
from mlff.errors import ConfigError
from mlff.models.compiled import CompiledNetwork
from mlff.models.energy_model import EnergyModel
from mlff.models.equiformer_v2 import EquiformerV2
from mlff.models.est import EST
from mlff.nn.chunking import chunked, edge_chunks

TINY = dict(num_layers=2, channels=8, lmax=2, mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4,
            ffn_hidden=8, edge_channels=8, num_basis=8, grid_resolution=8, avg_degree=20.0)


def model(kind=EquiformerV2, **extra) -> EnergyModel:
    torch.manual_seed(0)
    network = kind(species=[8, 29], cutoff=3.8, **TINY, **extra)
    with torch.no_grad():  # spread an untrained network's weights so that every term matters
        for p in network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return EnergyModel(network).double().eval().set_chunking(None)


def copper_oxide():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.numbers[::5] = 8
    atoms.rattle(0.08, seed=3)
    return atoms


@pytest.mark.parametrize("kind,extra", [(EquiformerV2, {}), (EST, dict(expert_hidden=8, sphere_points=30))],
                         ids=["equiformer_v2", "est"])
def test_chunked_equals_whole(kind, extra):
    m = model(kind, **extra)
    graph = AtomicGraph.from_atoms(copper_oxide(), m.cutoff, dtype=torch.float64)
    whole = m(graph, stress=True)
    m.set_chunking(97)  # chunks of uneven size, and atom chunks of 97 // 4 = 24 atoms
    assert len(edge_chunks(graph.edge_index[1], graph.num_atoms)) == 1  # outside the model's call nothing is chunked
    with chunked(97):
        assert len(edge_chunks(graph.edge_index[1], graph.num_atoms)) == 6
    parts = m(graph, stress=True)
    for key in ("energy", "energies", "forces", "stress"):
        torch.testing.assert_close(parts[key], whole[key], rtol=0, atol=1e-10)


def test_unsorted_edges_are_chunked_by_receiver():
    """Edges in any order give the same result: the chunks are index sets that keep each receiver whole."""
    m = model()
    graph = AtomicGraph.from_atoms(copper_oxide(), m.cutoff, dtype=torch.float64)
    whole = m(graph)
    perm = torch.randperm(graph.num_edges, generator=torch.Generator().manual_seed(0))
    shuffled = dataclasses.replace(graph, edge_index=graph.edge_index[:, perm], shifts=graph.shifts[perm])
    m.set_chunking(64)
    parts = m(shuffled)
    torch.testing.assert_close(parts["forces"], whole["forces"], rtol=0, atol=1e-10)
    torch.testing.assert_close(parts["energy"], whole["energy"], rtol=0, atol=1e-10)


def test_chunks_keep_each_receiver_whole():
    receiver = torch.tensor([0] * 3 + [1] * 10 + [3] * 2 + [4] * 4 + [6])  # atoms 2 and 5 have no edges
    with chunked(4):
        chunks = edge_chunks(receiver, 8)
        shuffled = edge_chunks(receiver[torch.randperm(20, generator=torch.Generator().manual_seed(1))], 8)
    # boundaries where the receivers at edges 4, 8, 12, 16 begin: a chunk holds at most size + one atom's edges
    assert [(c.edges.start, c.edges.stop) for c in chunks] == [(0, 3), (3, 15), (15, 20)]
    # each owns a range of atoms; together they cover all 8, the atoms without edges included
    assert [(c.first, c.count) for c in chunks] == [(0, 1), (1, 3), (4, 4)]
    for c in chunks:
        local = c.receivers(receiver)
        assert local.min() >= 0 and local.max() < c.count
    # index-set chunks when the edges are not sorted: every edge once, no receiver split, all atoms each
    assert sorted(torch.cat([c.edges for c in shuffled]).tolist()) == list(range(20))
    assert all((c.first, c.count) == (0, 8) for c in shuffled)
    for c in chunks:  # no receiver in two chunks
        others = torch.cat([receiver[o.edges] for o in chunks if o is not c])
        assert not set(receiver[c.edges].tolist()) & set(others.tolist())


def kept_bytes(m: EnergyModel, graph: AtomicGraph) -> int:
    """Bytes held for the backward while the forces are computed (distinct storages saved by autograd)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(graph)
    return sum(seen.values())


def test_chunking_keeps_far_less_for_the_backward():
    m = model().float()
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (4, 4, 4)
    atoms.rattle(0.05, seed=0)
    graph = AtomicGraph.from_atoms(atoms, m.cutoff, dtype=torch.float32)
    whole = kept_bytes(m, graph)
    chunks = kept_bytes(m.set_chunking(256), graph)
    assert chunks < whole / 4, (chunks, whole)


def test_compiled_network_runs_chunked_graphs_eagerly():
    m = model()
    graph = AtomicGraph.from_atoms(copper_oxide(), m.cutoff, dtype=torch.float64)
    whole = m(graph)
    m.set_compiled(True).set_chunking(64)
    parts = m(graph)
    assert m.compilations == 0
    assert isinstance(m._compiled, CompiledNetwork)
    torch.testing.assert_close(parts["forces"], whole["forces"], rtol=0, atol=1e-10)


def test_calculator_chunk_option():
    atoms = copper_oxide()
    reference = atoms.copy()
    reference.calc = MLFFCalculator(model(), chunk=None)
    atoms.calc = MLFFCalculator(model(), chunk=50)
    assert atoms.calc.model.chunk == 50
    torch.testing.assert_close(torch.tensor(atoms.get_forces()), torch.tensor(reference.get_forces()), rtol=0, atol=1e-10)
    assert MLFFCalculator(model()).model.chunk == "auto"


@pytest.mark.parametrize("bad", [0, -3, 2.5, "big", True])
def test_bad_chunk_sizes(bad):
    with pytest.raises(ConfigError, match="chunk must be"):
        model().set_chunking(bad)
    if isinstance(bad, int) and not isinstance(bad, bool):
        with pytest.raises(ValueError, match="chunk size must be"):
            with chunked(bad):
                pass


def test_training_never_chunks():
    """Training differentiates twice; it runs whole whatever the setting."""
    m = model().set_chunking(16)
    graph = AtomicGraph.from_atoms(copper_oxide(), m.cutoff, dtype=torch.float64)
    m.train()
    out = m(graph)
    loss = out["forces"].pow(2).sum()
    loss.backward()
    assert all(p.grad is not None for p in m.network.blocks[0].attention.parameters())
