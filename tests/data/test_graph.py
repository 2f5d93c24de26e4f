"""AtomicGraph construction, batching, labels and bad-input errors."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mlff.data import AtomicGraph, collate, set_labels
from mlff.errors import StructureError
from mlff.testing.structures import co_on_cu111


def labelled_slab():
    slab = co_on_cu111(a=None, height=1.8)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    slab.calc = EMT()
    set_labels(slab, slab.get_potential_energy(), slab.get_forces(), slab.get_stress())
    return slab


def test_edge_vectors_match_ase_distances():
    slab = labelled_slab()
    graph = AtomicGraph.from_atoms(slab, cutoff=4.0, dtype=torch.float64)
    i, j, d = ase_neighbor_list("ijd", slab, 4.0)
    lengths = graph.edge_vectors().norm(dim=1).numpy()
    assert graph.num_edges == len(i)
    mine = sorted(zip(graph.edge_index[1].tolist(), graph.edge_index[0].tolist(), np.round(lengths, 9)))
    ref = sorted(zip(i.tolist(), j.tolist(), np.round(d, 9)))
    assert mine == ref


def test_edges_come_in_both_directions():
    graph = AtomicGraph.from_atoms(bulk("Al", "fcc", a=4.05) * (2, 1, 1), cutoff=5.0)
    sender, receiver = graph.edge_index.tolist()
    key = lambda s, r, v: (s, r, *np.round(v, 6).tolist())  # noqa: E731
    vec = graph.edge_vectors().numpy() + 0.0
    forward = {key(s, r, v) for s, r, v in zip(sender, receiver, vec)}
    backward = {key(r, s, -v + 0.0) for s, r, v in zip(sender, receiver, vec)}
    assert forward == backward


def test_labels_fixed_atoms_and_tags_are_carried():
    slab = labelled_slab()
    graph = AtomicGraph.from_atoms(slab, cutoff=5.0, dtype=torch.float64)
    assert graph.energy.item() == pytest.approx(slab.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(graph.forces.numpy(), slab.get_forces(), atol=1e-12)
    assert graph.stress is None  # a slab's stress depends on the vacuum: not a label
    periodic = slab.copy()
    periodic.pbc = True
    periodic.calc = slab.calc
    s = slab.get_stress(voigt=False)
    np.testing.assert_allclose(AtomicGraph.from_atoms(periodic, cutoff=5.0).stress[0].numpy(), s, atol=1e-6)
    assert graph.fixed.sum().item() == 4 and graph.fixed[: 4].all()
    assert graph.tags.tolist() == slab.get_tags().tolist()
    assert graph.pbc.tolist() == [[True, True, False]]


def test_batch_of_different_structures():
    mol = molecule("CH3CH2OH")
    slab = labelled_slab()
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    singles = [AtomicGraph.from_atoms(a, cutoff=4.5) for a in (mol, slab, cu)]
    batch = AtomicGraph.from_atoms([mol, slab, cu], cutoff=4.5)
    assert batch.num_graphs == 3
    assert batch.atoms_per_graph.tolist() == [len(mol), len(slab), len(cu)]
    assert batch.num_edges == sum(g.num_edges for g in singles)
    assert torch.equal(batch.batch, torch.repeat_interleave(torch.arange(3), batch.atoms_per_graph))
    # per-edge vectors equal the single-structure ones (offsets applied correctly)
    torch.testing.assert_close(batch.edge_vectors(), torch.cat([g.edge_vectors() for g in singles]))
    # energy label kept only when every structure has one (the molecule has none)
    assert batch.energy is None and batch.fixed is not None
    both = collate([singles[1], AtomicGraph.from_atoms(slab, cutoff=4.5)])
    assert both.energy.shape == (2,) and both.forces.shape == (2 * len(slab), 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_to(dtype):
    graph = AtomicGraph.from_atoms(molecule("H2O"), cutoff=3.0, dtype=dtype)
    assert graph.positions.dtype == dtype and graph.cell.dtype == dtype
    other = torch.float64 if dtype == torch.float32 else torch.float32
    moved = graph.to(dtype=other)
    assert moved.positions.dtype == other and moved.edge_index.dtype == torch.long
    assert moved.numbers.dtype == torch.long and moved.shifts.dtype == torch.long


def test_edge_vectors_differentiate_through_positions_and_cell():
    cu = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    graph = AtomicGraph.from_atoms(cu, cutoff=4.0, dtype=torch.float64)
    pos = graph.positions.clone().requires_grad_(True)
    cell = graph.cell.clone().requires_grad_(True)
    graph.edge_vectors(pos, cell).norm(dim=1).sum().backward()
    assert cell.grad.abs().sum() > 0
    # translation invariance: position gradients sum to zero
    assert pos.grad.sum(0).abs().max() < 1e-10


def test_isolated_atom_graph_has_no_edges():
    graph = AtomicGraph.from_atoms(Atoms("Ar"), cutoff=5.0)
    assert graph.num_edges == 0 and graph.num_atoms == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Atoms(), "empty structure"),
        (lambda: Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN"),
        (lambda: Atoms("H2", positions=[[0, 0, 0], [np.inf, 0, 0]]), "NaN or infinity"),
        (lambda: Atoms("H2", positions=[[0, 0, 0], [0.05, 0, 0]]), "overlapping"),
        (lambda: Atoms("H", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True), "singular cell"),
        (lambda: Atoms("H", cell=[0, 0, 0], pbc=[True, True, False]), "singular cell"),
        (lambda: Atoms(numbers=[0, 1], positions=[[0, 0, 0], [1, 0, 0]]), "unknown atomic number"),
        (lambda: Atoms("H", cell=[0.05, 3, 3], pbc=True), "own periodic image"),
    ],
)
def test_bad_structures_raise_clear_errors(make, message):
    with pytest.raises(StructureError, match=message) as err:
        AtomicGraph.from_atoms([molecule("H2O"), make()], cutoff=3.0)
    assert "structure 1" in str(err.value)


def test_mixed_cutoffs_cannot_be_batched():
    a = AtomicGraph.from_atoms(molecule("H2O"), cutoff=3.0)
    b = AtomicGraph.from_atoms(molecule("H2O"), cutoff=4.0)
    with pytest.raises(ValueError, match="different cutoffs"):
        collate([a, b])


def test_closest_pair_finds_an_overlap_across_the_boundary_among_ordinary_bonds():
    """The cell list bins at 2 Å (BIN_RADIUS) and filters: bonds of 1-2 Å are not overlaps, an image
    0.05 Å away across a periodic boundary is, with its true distance."""
    from mlff.data.validation import closest_pair

    atoms = Atoms("CH3H", positions=[[1.0, 1.0, 10.0], [2.09, 1.0, 10.0], [1.0, 2.5, 10.0], [0.02, 1.0, 10.0],
                                     [5.99, 1.0, 10.0]],
                  cell=[6.0, 6.0, 20.0], pbc=[True, True, False])
    assert closest_pair(atoms[:4], 0.1) is None  # 0.98-1.5 Å bonds only
    i, j, distance = closest_pair(atoms, 0.1)
    assert {i, j} == {3, 4} and distance == pytest.approx(0.03)
