"""Both neighbour-list backends agree with a brute-force O(N^2 x images) reference."""

import itertools

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111, molecule

from mlff.data.neighbors import effective_cell, neighbor_list

BACKENDS = ["matscipy", "torch"]


def brute_force(positions, cell, pbc, cutoff):
    """Every (i, j, S) with |pos[j] - pos[i] + S @ cell| < cutoff, by explicit enumeration."""
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    reach = [0, 0, 0]
    periodic = [k for k in range(3) if pbc[k]]
    if periodic:
        # thickness of the periodic lattice along each periodic vector
        inv = np.linalg.inv(effective_cell(positions, cell, pbc)[0])
        thickness = 1.0 / np.linalg.norm(inv, axis=0)
        for k in periodic:
            reach[k] = int(np.ceil(cutoff / thickness[k])) + 1
    # positions may lie outside the cell: widen by how far atoms are from the origin cell
    frac = positions @ np.linalg.inv(effective_cell(positions, cell, pbc)[0])
    for k in periodic:
        reach[k] += int(np.ceil(np.ptp(frac[:, k]))) + 1
    out = set()
    for shift in itertools.product(*[range(-r, r + 1) for r in reach]):
        vec = positions[None, :, :] - positions[:, None, :] + np.asarray(shift) @ cell
        dist = np.linalg.norm(vec, axis=-1)
        for i, j in zip(*np.nonzero(dist < cutoff)):
            if i == j and not any(shift):
                continue
            out.add((int(i), int(j), *shift))
    return out


def as_set(nl):
    rows = torch.cat([nl.receivers[:, None], nl.senders[:, None], nl.shifts], 1).tolist()
    found = {tuple(r) for r in rows}
    assert len(found) == len(rows), "duplicate edges"
    return found


def random_triclinic(rng, n, scale):
    cell = np.eye(3) * scale + rng.uniform(-0.3, 0.3, (3, 3)) * scale
    frac = rng.uniform(-0.2, 1.2, (n, 3))  # some atoms outside the cell on purpose
    return frac @ cell, cell


def check(positions, cell, pbc, cutoff, backend, dtype=torch.float64):
    expected = brute_force(positions, cell, pbc, cutoff)
    pos_t = torch.as_tensor(np.asarray(positions), dtype=dtype)
    nl = neighbor_list(pos_t, torch.as_tensor(np.asarray(cell), dtype=dtype), pbc, cutoff, backend=backend)
    got = as_set(nl)
    assert got == expected, f"missing {len(expected - got)}, extra {len(got - expected)}"
    # r_ij = pos[j] - pos[i] + S @ cell is shorter than the cutoff for every edge
    vec = pos_t[nl.senders] - pos_t[nl.receivers] + nl.shifts.to(dtype) @ torch.as_tensor(np.asarray(cell), dtype=dtype)
    if len(vec):
        assert float(vec.norm(dim=1).max()) < cutoff
    return nl


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_random_triclinic_cells(backend, seed):
    rng = np.random.default_rng(seed)
    positions, cell = random_triclinic(rng, 30, 7.0)
    check(positions, cell, [True, True, True], 3.5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pbc", [[True, True, False], [True, False, False], [False, True, True]])
def test_mixed_pbc(backend, pbc):
    rng = np.random.default_rng(7)
    positions, cell = random_triclinic(rng, 25, 6.0)
    check(positions, cell, pbc, 3.0, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_much_smaller_than_cutoff(backend):
    # 1-atom fcc Cu cell (~2.55 A nearest neighbour), cutoff 6 A: many images of the atom itself
    atoms = bulk("Cu", "fcc", a=3.61)
    nl = check(atoms.positions, atoms.cell.array, [True] * 3, 6.0, backend)
    assert (nl.receivers == 0).all() and len(nl.receivers) == 78  # 12+6+24+12+24 shells < 6 A


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_triclinic_cell(backend):
    rng = np.random.default_rng(3)
    positions, cell = random_triclinic(rng, 3, 1.7)
    check(positions, cell, [True] * 3, 4.0, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slab_with_vacuum_and_adsorbate(backend):
    slab = fcc111("Cu", (3, 3, 3), vacuum=8.0)
    assert list(slab.pbc) == [True, True, False]
    check(slab.positions, slab.cell.array, slab.pbc, 5.0, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_molecule_without_cell(backend):
    atoms = molecule("CH3CH2OH")
    assert not atoms.cell.any()
    nl = check(atoms.positions, atoms.cell.array, atoms.pbc, 3.0, backend)
    assert (nl.shifts == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_atoms_have_no_edges(backend):
    positions = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    nl = neighbor_list(positions, np.zeros((3, 3)), [False] * 3, 5.0, backend=backend)
    assert len(nl.receivers) == 0
    single = neighbor_list(positions[:1], np.zeros((3, 3)), [False] * 3, 5.0, backend=backend)
    assert len(single.receivers) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_matches_brute_force(backend):
    rng = np.random.default_rng(11)
    positions, cell = random_triclinic(rng, 40, 8.0)
    check(positions, cell, [True] * 3, 3.7, backend, dtype=torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_many_neighbours_no_cap(backend):
    # ~200 neighbours per atom: nothing is truncated
    rng = np.random.default_rng(5)
    positions, cell = random_triclinic(rng, 200, 9.0)
    nl = check(positions, cell, [True] * 3, 6.0, backend)
    assert torch.bincount(nl.receivers).max() > 150


def test_backends_give_identical_sorted_lists():
    atoms = fcc111("Pt", (4, 4, 4), vacuum=6.0)
    a = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 6.0, backend="matscipy")
    b = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 6.0, backend="torch")
    assert as_set(a) == as_set(b)
    # the torch backend is sorted by receiver
    assert (b.receivers[1:] >= b.receivers[:-1]).all()


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown neighbour-list backend"):
        neighbor_list(np.zeros((2, 3)), np.eye(3), [True] * 3, 1.0, backend="kdtree")
