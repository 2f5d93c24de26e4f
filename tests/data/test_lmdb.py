"""fairchem's LMDB formats, written with the libraries themselves and read back."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import add_adsorbate, fcc111
from ase.constraints import FixAtoms

from mlff.data.formats import read_structures, write_structures
from mlff.data.labels import LabelKeys, get_labels, set_labels
from mlff.errors import DataError

lmdb = pytest.importorskip("lmdb", reason="lmdb is not installed (pip install 'mlff[oc20]')")
torch = pytest.importorskip("torch")


def slab(seed: int = 0):
    atoms = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.5, "fcc")
    atoms.info.clear()  # fcc111's adsorbate_info, which extxyz cannot store
    atoms.set_constraint(FixAtoms(mask=atoms.get_tags() == 3))
    rng = np.random.default_rng(seed)
    atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
    return set_labels(atoms, energy=-3.0 - seed, forces=rng.standard_normal((len(atoms), 3)),
                      stress=rng.standard_normal(6))


def test_aselmdb_round_trip_keeps_labels_tags_constraints_and_ids(tmp_path):
    pytest.importorskip("ase_db_backends", reason="ase-db-backends is not installed (pip install 'mlff[oc20]')")
    frames = [slab(k) for k in range(3)]
    for k, atoms in enumerate(frames):
        atoms.info.update(sid=100 + k, oc22_reference={"O": -7.2})
    path = tmp_path / "oc.aselmdb"
    write_structures(path, frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oc.aselmdb"]  # no temporary or lock file left
    back = read_structures(path, require=("energy", "forces", "stress"))
    assert len(back) == 3
    for atoms, ref in zip(back, frames):
        np.testing.assert_array_equal(atoms.positions, ref.positions)
        np.testing.assert_array_equal(atoms.get_tags(), ref.get_tags())
        assert atoms.constraints[0].get_indices().tolist() == ref.constraints[0].get_indices().tolist()
        for name, value in get_labels(ref).items():
            np.testing.assert_array_equal(get_labels(atoms)[name], value)
        assert atoms.info["sid"] == ref.info["sid"] and atoms.info["oc22_reference"] == {"O": -7.2}
    assert read_structures(path, index="1")[0].info["sid"] == 101


def write_oc20(path, objects, length: bool = True):
    """An OC20-style LMDB: one pickled object per key "0", "1"... (and "length")."""
    env = lmdb.open(str(path), subdir=False, map_size=2**26, meminit=False, map_async=True)
    with env.begin(write=True) as txn:
        for k, obj in enumerate(objects):
            txn.put(f"{k}".encode("ascii"), pickle.dumps(obj, protocol=-1))
        if length:
            txn.put(b"length", pickle.dumps(len(objects), protocol=-1))
    env.close()
    Path(f"{path}-lock").unlink(missing_ok=True)


def s2ef(atoms, **extra):
    """The fields of an OC20 S2EF ``Data`` object."""
    labels = get_labels(atoms)
    fields = dict(pos=torch.tensor(atoms.positions, dtype=torch.float32), cell=torch.tensor(atoms.cell.array)[None],
                  atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.float32), natoms=len(atoms),
                  tags=torch.tensor(atoms.get_tags()), fixed=torch.tensor(atoms.get_tags() == 3, dtype=torch.float32),
                  y=float(labels["energy"]), force=torch.tensor(labels["forces"], dtype=torch.float32), sid=1234,
                  fid=5, edge_index=torch.zeros(2, 0, dtype=torch.long))
    fields.update(extra)
    return fields


@pytest.mark.parametrize("length", [True, False])
def test_oc20_s2ef_lmdb_of_torch_geometric_data(tmp_path, length):
    pyg = pytest.importorskip("torch_geometric.data")
    frames = [slab(k) for k in range(12)]
    path = tmp_path / "s2ef.lmdb"
    write_oc20(path, [pyg.Data(**s2ef(a)) for a in frames], length=length)
    back = read_structures(path, require=("energy", "forces"))
    assert len(back) == 12  # keys sort as numbers without a "length" key: "10" after "9"
    for atoms, ref in zip(back, frames):
        np.testing.assert_allclose(atoms.positions, ref.positions, atol=1e-6)
        assert atoms.pbc.all() and np.allclose(atoms.cell.array, ref.cell.array)
        np.testing.assert_array_equal(atoms.get_tags(), ref.get_tags())
        assert atoms.constraints[0].get_indices().tolist() == [0, 1, 2, 3]
        assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy())
        np.testing.assert_allclose(get_labels(atoms)["forces"], get_labels(ref)["forces"], atol=1e-6)
        assert atoms.info["sid"] == 1234 and atoms.info["fid"] == 5 and "edge_index" not in atoms.arrays


def test_is2re_targets_and_torch_geometric_1_pickles(tmp_path):
    """IS2RE files name the energy y_relaxed; torch-geometric 1.x objects keep fields as attributes."""
    atoms = slab()
    fields = s2ef(atoms, y_init=-1.0, y_relaxed=-2.5, pos_relaxed=torch.tensor(atoms.positions + 0.1))
    del fields["y"], fields["force"]
    path = tmp_path / "is2re.lmdb"
    write_oc20(path, [SimpleNamespace(**fields)])
    (back,) = read_structures(path, keys=LabelKeys(energy="y_relaxed"))
    assert back.get_potential_energy() == -2.5 and back.info["y_init"] == -1.0
    np.testing.assert_allclose(back.arrays["pos_relaxed"], atoms.positions + 0.1)


@pytest.mark.parametrize("fields, message", [
    (lambda a: {"positions": a.positions}, r"frame 0 of .*bad.lmdb \(key '0'\): unknown schema, no 'pos' or "
                                           r"'atomic_numbers'; fields: positions"),
    (lambda a: s2ef(a, tags=torch.zeros(3)), r"frame 0 of .*bad.lmdb \(key '0'\): 'tags' has 3 entries for 13 atoms"),
    (lambda a: s2ef(a, fixed=torch.zeros(20)), r"'fixed' has 20 entries for 13 atoms"),
    (lambda a: 42, r"frame 0 of .*bad.lmdb \(key '0'\): unknown schema: a int, not a torch-geometric Data"),
])
def test_bad_frames_are_named(tmp_path, fields, message):
    path = tmp_path / "bad.lmdb"
    write_oc20(path, [fields(slab())])
    with pytest.raises(DataError, match=message):
        read_structures(path)


def test_a_missing_label_names_the_key_and_what_is_there(tmp_path):
    fields = s2ef(slab())
    del fields["force"]
    path = tmp_path / "noforce.lmdb"
    write_oc20(path, [fields])
    with pytest.raises(DataError, match=r"frame 0 of .*noforce.lmdb has no forces under key 'force'; available: "):
        read_structures(path, require=("energy", "forces"))


def test_corrupt_and_truncated_files_are_named(tmp_path):
    path = tmp_path / "s2ef.lmdb"
    write_oc20(path, [s2ef(slab(k)) for k in range(40)])
    data = bytearray(path.read_bytes())
    corrupt = tmp_path / "corrupt.lmdb"
    corrupt.write_bytes(data[: len(data) // 2])  # the second half of the pages is gone
    with pytest.raises(DataError, match=r"corrupt.lmdb"):
        read_structures(corrupt)
    garbage = tmp_path / "garbage.lmdb"
    garbage.write_bytes(b"not an lmdb file" * 512)
    with pytest.raises(DataError, match=r"garbage.lmdb is not a readable OC20 LMDB"):
        read_structures(garbage)
    with pytest.raises(DataError, match=r"missing.lmdb: no such file"):
        read_structures(tmp_path / "missing.lmdb")
