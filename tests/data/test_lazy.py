"""Frames read on demand: the same structures as reading the whole file, in any process."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlff.data.formats import read_structures, write_structures
from mlff.data.labels import get_labels
from mlff.data.lazy import Concat, LazyStructures, Subset
from mlff.errors import DataError
from tests.data.test_lmdb import s2ef, slab, write_oc20


def same(a, b):
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-6)
    for name, value in get_labels(b).items():
        np.testing.assert_allclose(get_labels(a)[name], value, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.get_tags(), b.get_tags())


FORMATS = [".xyz", ".traj", ".aselmdb"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_lazy_frames_equal_the_whole_file(tmp_path, suffix):
    if suffix == ".aselmdb":
        pytest.importorskip("ase_db_backends", reason="ase-db-backends is not installed (pip install 'mlff[oc20]')")
    path = tmp_path / f"frames{suffix}"
    write_structures(path, [slab(k) for k in range(7)])
    whole = read_structures(path)
    lazy = LazyStructures(path)
    assert len(lazy) == 7
    for k in (0, 3, 6, -1):
        same(lazy[k], whole[k])
    assert [a.get_potential_energy() for a in lazy[1:3]] == [whole[1].get_potential_energy(),
                                                             whole[2].get_potential_energy()]
    with pytest.raises(IndexError):
        lazy[7]
    # a DataLoader worker gets a pickled copy without open handles and reopens the file; an extxyz
    # index holds no handle and travels, so the worker does not scan the file again
    copy = pickle.loads(pickle.dumps(lazy))
    assert (copy._source is not None) == (suffix == ".xyz")
    same(copy[5], whole[5])
    lazy.close()
    same(lazy[4], whole[4])  # reopened


def test_oc20_lmdb_uses_its_own_label_names(tmp_path):
    pytest.importorskip("torch_geometric", reason="torch-geometric is not installed (pip install 'mlff[oc20]')")
    path = tmp_path / "s2ef.lmdb"
    write_oc20(path, [s2ef(slab(k)) for k in range(3)])
    lazy = LazyStructures(path, require=("energy", "forces"))
    same(lazy[2], read_structures(path)[2])


def test_concat_and_subset_index_across_files(tmp_path):
    paths = [tmp_path / "a.xyz", tmp_path / "b.xyz"]
    write_structures(paths[0], [slab(k) for k in range(3)])
    write_structures(paths[1], [slab(k) for k in range(3, 5)])
    joined = Concat([LazyStructures(p) for p in paths])
    assert len(joined) == 5
    energies = [a.get_potential_energy() for a in joined]
    assert energies == [-3.0 - k for k in range(5)]
    picked = Subset(joined, [4, 0, 3])
    assert [a.get_potential_energy() for a in picked] == [-7.0, -3.0, -6.0] and picked[-1].get_potential_energy() == -6.0
    assert [a.get_potential_energy() for a in joined[1:4]] == [-4.0, -5.0, -6.0]
    assert [a.get_potential_energy() for a in picked[::-2]] == [-6.0, -7.0]


def test_bad_files_are_named(tmp_path):
    path = tmp_path / "cut.xyz"
    write_structures(path, [slab(0), slab(1)])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-3]))
    with pytest.raises(DataError, match=r"cut.xyz is truncated: frame 1 declares 13 atoms"):
        LazyStructures(path)
    with pytest.raises(DataError, match=r"no lazy reader for '.npz'"):
        LazyStructures(tmp_path / "x.npz")
    unlabelled = tmp_path / "plain.xyz"
    write_structures(unlabelled, [slab(0).copy()])  # copy() drops the calculator: no labels
    with pytest.raises(DataError, match=r"frame 0 of .*plain.xyz has no energy under key 'energy'"):
        LazyStructures(unlabelled)[0]
