"""Readers and writers: exact round trips, key mapping, and a clear error for every kind of bad file."""

import os

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms

from mlff.data.formats import read_structures, write_structures
from mlff.data.labels import LabelKeys, get_labels
from mlff.errors import ConfigError, DataError, StructureError
from mlff.testing.structures import co_on_cu111

REF_KEYS = LabelKeys(energy="REF_energy", forces="REF_forces", stress="REF_stress")


def single_point(atoms: Atoms, stress: bool = True) -> Atoms:
    """Label ``atoms`` with EMT energy, forces (and stress), frozen in a SinglePointCalculator."""
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def cu_bulk(seed: int) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.info["config_type"] = f"bulk-{seed}"
    return single_point(atoms)


def cu_al_bulk() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    atoms.numbers[[1, 4, 6]] = 13
    atoms.rattle(0.05, seed=7)
    atoms.info.update(config_type="alloy", temperature=300.0, step=12)
    return single_point(atoms)


def cu_slab_co() -> Atoms:
    atoms = co_on_cu111((2, 2, 2), a=None, vacuum=5.0)
    del atoms.info["adsorbate_info"]  # holds numpy arrays in a dict, which extxyz cannot store
    atoms.set_constraint(FixAtoms(indices=[0, 1, 2, 3]))
    atoms.rattle(0.02, seed=3)
    atoms.info["config_type"] = "slab+CO"
    return single_point(atoms, stress=False)


@pytest.fixture(scope="module")
def frames():
    return [cu_bulk(0), cu_al_bulk(), cu_slab_co()]


def assert_same(expected: Atoms, actual: Atoms, info=True):
    np.testing.assert_array_equal(actual.numbers, expected.numbers)
    np.testing.assert_allclose(actual.positions, expected.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(actual.cell.array, expected.cell.array, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(actual.pbc, expected.pbc)
    want, got = get_labels(expected), get_labels(actual)
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-10, err_msg=name)
    if info:
        assert actual.info == expected.info
        np.testing.assert_array_equal(actual.get_tags(), expected.get_tags())
        fixed = lambda a: sorted(i for c in a.constraints for i in c.get_indices())  # noqa: E731
        assert fixed(actual) == fixed(expected)


# ------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".extxyz", ".xyz", ".traj", ".db"])
def test_round_trip_every_label_and_metadata(tmp_path, frames, suffix):
    path = tmp_path / f"data{suffix}"
    write_structures(path, frames)
    back = read_structures(path)
    assert len(back) == len(frames)
    for expected, actual in zip(frames, back):
        assert_same(expected, actual)
    assert "stress" not in get_labels(back[2])  # the slab never had a stress
    assert back[2].constraints and isinstance(back[2].constraints[0], FixAtoms)
    assert back[1].info["temperature"] == 300.0 and back[1].info["step"] == 12


def test_npz_round_trip_same_composition(tmp_path):
    frames = [cu_bulk(seed) for seed in range(4)]
    path = tmp_path / "cu.npz"
    write_structures(path, frames)
    with np.load(path) as data:
        assert data["R"].shape == (4, 4, 3) and data["E"].shape == (4,) and data["F"].shape == (4, 4, 3)
    for expected, actual in zip(frames, read_structures(path)):
        assert_same(expected, actual, info=False)


def test_npz_writer_rejects_mixed_compositions_and_partial_labels(tmp_path, frames):
    with pytest.raises(DataError, match="structure 1 has a different composition"):
        write_structures(tmp_path / "mixed.npz", frames)
    unlabelled = cu_bulk(1)
    unlabelled.calc = None
    with pytest.raises(DataError, match="structure 1 has no energy"):
        write_structures(tmp_path / "partial.npz", [cu_bulk(0), unlabelled])


@pytest.mark.parametrize("energy_shape", ["flat", "column"])
def test_md17_npz_default_keys(tmp_path, energy_shape):
    frames = []
    for k in range(3):
        mol = molecule("CH3CH2OH")
        mol.rattle(0.03, seed=k)
        frames.append(single_point(mol, stress=False))
    energies = np.array([get_labels(a)["energy"] for a in frames])
    forces = np.stack([get_labels(a)["forces"] for a in frames])
    path = tmp_path / "ethanol.npz"
    np.savez(
        path,
        R=np.stack([a.positions for a in frames]),
        z=frames[0].numbers.astype(np.uint8),
        E=energies[:, None] if energy_shape == "column" else energies,
        F=forces,
    )
    back = read_structures(path)
    for expected, actual in zip(frames, back):
        assert_same(expected, actual, info=False)
        assert not actual.pbc.any()


def test_npz_custom_keys(tmp_path):
    mol = single_point(molecule("H2O"), stress=False)
    labels = get_labels(mol)
    path = tmp_path / "rmd17.npz"
    np.savez(path, R=mol.positions[None], z=mol.numbers, energies=[labels["energy"]],
             gradients=-labels["forces"][None])
    with pytest.raises(DataError, match="has no energy under key 'E'; available: energies, gradients"):
        read_structures(path)
    back = read_structures(path, keys=LabelKeys(energy="energies", forces="gradients"))
    assert get_labels(back[0])["energy"] == labels["energy"]
    np.testing.assert_array_equal(get_labels(back[0])["forces"], -labels["forces"])


# ------------------------------------------------------------------------------------- key mapping
def with_ref_labels(atoms: Atoms) -> Atoms:
    """Store distinct REF_* labels in info/arrays next to the calculator's own energy/forces/stress."""
    labels = get_labels(atoms)
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, **labels)
    atoms.info["REF_energy"] = labels["energy"] - 1.5
    atoms.arrays["REF_forces"] = 2.0 * labels["forces"]
    atoms.info["REF_stress"] = 3.0 * labels["stress"]
    return atoms


@pytest.mark.parametrize("writer", ["mlff", "ase"])
def test_custom_keys_in_extxyz(tmp_path, writer):
    frames = [with_ref_labels(cu_bulk(k)) for k in range(2)]
    path = tmp_path / "ref.extxyz"
    if writer == "mlff":
        write_structures(path, frames)
    else:
        ase.io.write(path, frames, format="extxyz")
    back = read_structures(path, keys=REF_KEYS)
    for original, atoms in zip(frames, back):
        labels, plain = get_labels(atoms), get_labels(original)
        assert labels["energy"] == pytest.approx(plain["energy"] - 1.5, abs=1e-12)
        np.testing.assert_allclose(labels["forces"], 2.0 * plain["forces"], atol=1e-7)
        np.testing.assert_allclose(labels["stress"], 3.0 * plain["stress"], atol=1e-12)
        # the mapped keys now live only in the canonical place
        assert "REF_energy" not in atoms.info and "REF_forces" not in atoms.arrays
        assert atoms.info["config_type"] == original.info["config_type"]
    default = read_structures(path)
    assert get_labels(default[0])["energy"] == pytest.approx(get_labels(frames[0])["energy"], abs=1e-12)


@pytest.mark.parametrize("suffix", [".extxyz", ".traj"])
def test_single_point_calculator_results_written_by_ase_are_honoured(tmp_path, frames, suffix):
    path = tmp_path / f"ase{suffix}"
    ase.io.write(path, frames)
    back = read_structures(path)
    for expected, actual in zip(frames, back):
        want, got = get_labels(expected), get_labels(actual)
        assert set(got) == set(want)
        assert got["energy"] == want["energy"]
        np.testing.assert_allclose(got["forces"], want["forces"], atol=1e-7)  # ASE writes 8 decimals


def test_ase_database_key_value_pairs_and_data(tmp_path, frames):
    path = tmp_path / "ref.db"
    with ase.db.connect(str(path)) as db:
        for k, atoms in enumerate(frames):
            labels = get_labels(atoms)
            plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            db.write(plain, key_value_pairs={"REF_energy": labels["energy"] + k, "origin": "emt"},
                     data={"REF_forces": -labels["forces"]})
    back = read_structures(path, keys=REF_KEYS)
    for k, (expected, atoms) in enumerate(zip(frames, back)):
        labels = get_labels(atoms)
        assert labels["energy"] == get_labels(expected)["energy"] + k
        np.testing.assert_array_equal(labels["forces"], -get_labels(expected)["forces"])
        assert "stress" not in labels and atoms.info["origin"] == "emt"


def test_plain_xyz_without_labels(tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text("3\nwater, no labels\nO 0 0 0.119\nH 0 0.763 -0.477\nH 0 -0.763 -0.477\n")
    (atoms,) = read_structures(path, require=())
    assert atoms.get_chemical_formula() == "H2O" and get_labels(atoms) == {}
    with pytest.raises(DataError, match="frame 0 of .*water.xyz has no energy under key 'energy'"):
        read_structures(path)


# ------------------------------------------------------------------------------------- index
@pytest.mark.parametrize("suffix", [".extxyz", ".traj", ".db", ".npz"])
@pytest.mark.parametrize(
    "index, expected",
    [(":", [0, 1, 2, 3, 4]), (2, [2]), (-1, [4]), ("3", [3]), ("1:4", [1, 2, 3]),
     (slice(None, None, 2), [0, 2, 4]), ("::-2", [4, 2, 0]), ("7:", [])],
)
def test_index_selects_frames(tmp_path, suffix, index, expected):
    frames = [cu_bulk(seed) for seed in range(5)]
    path = tmp_path / f"five{suffix}"
    write_structures(path, frames)
    back = read_structures(path, index=index)
    assert [get_labels(a)["energy"] for a in back] == [get_labels(frames[k])["energy"] for k in expected]


@pytest.mark.parametrize("suffix", [".extxyz", ".npz"])
def test_index_out_of_range(tmp_path, suffix):
    path = tmp_path / f"two{suffix}"
    write_structures(path, [cu_bulk(0), cu_bulk(1)])
    with pytest.raises(DataError, match="has 2 frames; frame 5 does not exist"):
        read_structures(path, index=5)


# ------------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing.xyz: no such file"):
        read_structures(tmp_path / "nothing.xyz")


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.cif"
    path.write_text("data_x\n")
    with pytest.raises(DataError, match=r"unknown extension '\.cif'; supported: .*\.xyz.*\.db.*\.npz"):
        read_structures(path)
    with pytest.raises(DataError, match=r"cannot write extension '\.cif'"):
        write_structures(path, [cu_bulk(0)])


def test_unknown_required_label(tmp_path):
    with pytest.raises(ConfigError, match="unknown required label"):
        read_structures(tmp_path / "x.xyz", require=("energies",))


@pytest.fixture
def three_frames_xyz(tmp_path):
    """An extxyz with three 4-atom frames: frame k occupies lines 6k+1 .. 6k+6."""
    path = tmp_path / "data.xyz"
    write_structures(path, [cu_bulk(seed) for seed in range(3)])
    return path


def test_truncated_extxyz_names_frame_and_lines(three_frames_xyz):
    lines = three_frames_xyz.read_text().splitlines(keepends=True)
    three_frames_xyz.write_text("".join(lines[:-2]))  # cut the last frame after two of its atoms
    with pytest.raises(DataError, match=r"data.xyz is truncated: frame 2 \(line 13\) declares 4 atoms "
                       r"and needs lines 13-18, but the file ends at line 16"):
        read_structures(three_frames_xyz)


def test_extxyz_bad_atom_count_line(three_frames_xyz):
    lines = three_frames_xyz.read_text().splitlines(keepends=True)
    lines[6] = "four\n"
    three_frames_xyz.write_text("".join(lines))
    with pytest.raises(DataError, match=r"line 7 of .*: expected the atom count of frame 1, got 'four'"):
        read_structures(three_frames_xyz)


def test_extxyz_blank_line_between_frames(three_frames_xyz):
    lines = three_frames_xyz.read_text().splitlines(keepends=True)
    three_frames_xyz.write_text("".join(lines[:6] + ["\n"] + lines[6:]))
    with pytest.raises(DataError, match=r"line 7 of .*data.xyz: blank line before frame 1"):
        read_structures(three_frames_xyz)
    three_frames_xyz.write_text("".join(lines) + "\n\n")  # trailing blank lines are fine
    assert len(read_structures(three_frames_xyz)) == 3


def test_extxyz_corrupt_number_names_frame(three_frames_xyz):
    lines = three_frames_xyz.read_text().splitlines(keepends=True)
    lines[9] = lines[9].replace(".", "x", 1)  # an atom line of frame 1
    three_frames_xyz.write_text("".join(lines))
    with pytest.raises(DataError, match=r"frame 1 of .*data.xyz \(lines 7-12\) cannot be parsed"):
        read_structures(three_frames_xyz)
    assert len(read_structures(three_frames_xyz, index=0)) == 1  # frames before the damage still read


def test_binary_file_with_xyz_extension(tmp_path):
    path = tmp_path / "binary.xyz"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(DataError, match="binary.xyz is not a text file"):
        read_structures(path)


def test_missing_label_lists_available_keys(tmp_path):
    frames = [cu_bulk(seed) for seed in range(6)]
    for atoms in frames:
        atoms.info["REF_energy"] = get_labels(atoms)["energy"]
    del frames[4].info["REF_energy"]
    path = tmp_path / "data.xyz"
    write_structures(path, frames)
    message = (f"frame 4 of {path} has no energy under key 'REF_energy'; "
               "available: config_type, energy, forces, stress")
    with pytest.raises(DataError) as err:
        read_structures(path, keys=LabelKeys(energy="REF_energy"))
    assert str(err.value) == message


def test_require_controls_which_labels_must_exist(tmp_path, frames):
    path = tmp_path / "mixed.extxyz"
    write_structures(path, frames)  # the slab (frame 2) has no stress
    assert len(read_structures(path, require=("energy", "forces"))) == 3
    with pytest.raises(DataError, match="frame 2 of .* has no stress under key 'stress'"):
        read_structures(path, require=("energy", "forces", "stress"))


def test_forces_with_wrong_shape(tmp_path):
    atoms = cu_bulk(0)
    atoms.arrays["bad_forces"] = np.zeros((len(atoms), 2))
    path = tmp_path / "bad.extxyz"
    write_structures(path, [cu_bulk(1), atoms])
    with pytest.raises(DataError, match=r"frame 1 of .*: forces under key 'bad_forces' has shape \(4, 2\), "
                       r"expected \(4, 3\)"):
        read_structures(path, keys=LabelKeys(forces="bad_forces"), index="1:")
    npz = tmp_path / "bad.npz"
    np.savez(npz, R=np.stack([atoms.positions] * 2), z=atoms.numbers, E=[0.0, 1.0], F=np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match=r"frame 0 of .*bad.npz: forces under key 'F' has shape \(3, 3\)"):
        read_structures(npz)


def test_non_finite_and_non_numeric_labels(tmp_path):
    atoms = cu_bulk(0)
    npz = tmp_path / "nan.npz"
    np.savez(npz, R=atoms.positions[None].repeat(2, 0), z=atoms.numbers, E=[0.0, np.nan])
    with pytest.raises(DataError, match="frame 1 of .*: energy under key 'E' contains NaN"):
        read_structures(npz)
    atoms.info["REF_energy"] = "high"
    path = tmp_path / "text.extxyz"
    write_structures(path, [atoms])
    with pytest.raises(DataError, match="frame 0 of .*: energy under key 'REF_energy' is not numeric"):
        read_structures(path, keys=LabelKeys(energy="REF_energy"))


def test_validation_names_the_frame(tmp_path):
    broken = cu_bulk(1)
    broken.positions[1] = broken.positions[0] + 0.01
    path = tmp_path / "overlap.traj"
    write_structures(path, [cu_bulk(0), broken])
    with pytest.raises(StructureError, match="frame 1 of .*overlap.traj: atoms 0 and 1 are"):
        read_structures(path)
    assert len(read_structures(path, validate=False)) == 2


@pytest.mark.parametrize(
    "name, match",
    [("garbage.traj", "is not a readable ASE trajectory"), ("garbage.db", "is not a readable ASE database"),
     ("garbage.npz", "is not a readable .npz file")],
)
def test_garbage_binary_files(tmp_path, name, match):
    path = tmp_path / name
    path.write_bytes(b"this is not what the extension promises\n" * 20)
    with pytest.raises(DataError, match=match):
        read_structures(path)


def test_truncated_trajectory(tmp_path):
    path = tmp_path / "cut.traj"
    write_structures(path, [cu_bulk(seed) for seed in range(3)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.traj"):
        read_structures(path)


def test_npz_structure_errors(tmp_path):
    atoms = cu_bulk(0)
    path = tmp_path / "x.npz"
    np.savez(path, positions=atoms.positions[None], z=atoms.numbers)
    with pytest.raises(DataError, match=r"needs positions 'R' and atomic numbers 'z'; found \['positions', "):
        read_structures(path)
    np.savez(path, R=atoms.positions[None, :3], z=atoms.numbers)
    with pytest.raises(DataError, match=r"'R' has shape \(1, 3, 3\), expected \(frames, 4, 3\)"):
        read_structures(path)
    np.savez(path, R=atoms.positions[None].repeat(3, 0), z=atoms.numbers, E=[1.0, 2.0])
    with pytest.raises(DataError, match=r"'E' has shape \(2,\), expected 3 frames"):
        read_structures(path)


# ------------------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("suffix", [".extxyz", ".npz"])
def test_failed_write_keeps_the_old_file(tmp_path, frames, suffix):
    path = tmp_path / f"keep{suffix}"
    write_structures(path, [cu_bulk(0)])
    before = path.read_bytes()
    if suffix == ".npz":
        bad, match = frames, "different composition"
    else:  # the second frame fails half way through the write: complex numbers have no extxyz type
        bad, match = [cu_bulk(1), cu_bulk(2)], "array 'phase' has dtype complex128"
        bad[1].new_array("phase", np.ones(len(bad[1]), dtype=complex))
    with pytest.raises(DataError, match=match):
        write_structures(path, bad)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
