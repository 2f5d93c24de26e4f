"""Reference-data generation with real GFN2-xTB (tblite) and real EMT: labels, metadata, files."""

import ctypes

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read, write
from tblite import _libtblite
from tblite.ase import TBLite

from mlff.data.generate import (
    MOLECULES,
    build_slab,
    emt_lattice_constant,
    generate_md17,
    generate_oc20,
    iter_bulk,
    iter_md17,
    iter_oc20,
    load_molecule,
    write_frames,
)
from mlff.data.generate.md17 import XTB_ACCURACY, serial_openmp
from mlff.data.labels import get_labels
from mlff.errors import ConfigError, DataError

TINY_MD17 = dict(interval=3, equilibration=5, progress=False)
TINY_OC20 = dict(n_md=3, n_relax=4, n_relax_paths=2, interval=3, equilibration=5, max_relax_steps=12,
                 progress=False)


@pytest.fixture(scope="module")
def ethanol():
    return generate_md17("ethanol", 3, seed=0, **TINY_MD17)


@pytest.fixture(scope="module")
def co_cu111():
    return generate_oc20("Cu", "111", "CO", seed=0, **TINY_OC20)


def test_md17_frames_carry_labels_and_metadata(ethanol):
    assert len(ethanol) == 3
    for frame, step in zip(ethanol, (8, 11, 14)):
        labels = get_labels(frame)
        assert set(labels) == {"energy", "forces"}
        assert labels["forces"].shape == (9, 3) and np.isfinite(labels["forces"]).all()
        assert frame.info == {"method": "GFN2-xTB", "system": "ethanol", "seed": 0, "source": "md",
                              "temperature": 500.0, "step": step}
        assert not frame.pbc.any()
    positions = np.stack([f.positions for f in ethanol])
    assert np.abs(np.diff(positions, axis=0)).max() > 1e-3  # the molecule moves between frames


def test_md17_labels_match_a_fresh_xtb_single_point(ethanol):
    frame = ethanol[-1]
    atoms = frame.copy()
    with serial_openmp():
        atoms.calc = TBLite(method="GFN2-xTB", accuracy=XTB_ACCURACY, verbosity=0)
        assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(atoms.get_forces(), frame.get_forces(), atol=2e-5)
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)  # tblite's default SCF accuracy
        assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(atoms.get_forces(), frame.get_forces(), atol=1e-3)


def test_md17_rattled_frames_are_the_md_frames_displaced_and_labelled_again(ethanol):
    rattled = generate_md17("ethanol", 3, seed=0, rattle=0.05, **TINY_MD17)
    for plain, frame in zip(ethanol, rattled):
        shift = frame.positions - plain.positions
        assert 0.02 < shift.std() < 0.08 and frame.info == {**plain.info, "rattle": 0.05}
        atoms = frame.copy()
        with serial_openmp():
            atoms.calc = TBLite(method="GFN2-xTB", accuracy=XTB_ACCURACY, verbosity=0)
            assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-7)
            np.testing.assert_allclose(atoms.get_forces(), frame.get_forces(), atol=2e-5)
    with pytest.raises(ConfigError, match="rattle must be a finite number >= 0"):
        iter_md17("ethanol", 3, rattle=-0.1)


def test_oc20_slab_tags_constraints_and_cell(co_cu111):
    frame = co_cu111[0]
    tags = frame.get_tags()
    assert (tags == 0).sum() == 18 and (tags == 1).sum() == 18  # 3x3, 2 fixed + 2 free layers
    assert list(frame.symbols[tags == 2]) == ["C", "O"]
    (constraint,) = frame.constraints
    assert isinstance(constraint, FixAtoms)
    np.testing.assert_array_equal(np.sort(constraint.index), np.flatnonzero(tags == 0))
    assert frame.pbc.tolist() == [True, True, False]
    z = frame.positions[:, 2]
    assert z.min() > 9.5 and frame.cell[2, 2] - z.max() > 9.5  # vacuum on both sides
    assert frame.positions[tags == 0, 2].max() < frame.positions[tags == 1, 2].min()
    initial, _ = build_slab("Cu", "111", "CO")
    for f in co_cu111:  # fixed atoms never move, in MD or relaxation
        np.testing.assert_allclose(f.positions[tags == 0], initial.positions[tags == 0], atol=1e-12)


def test_oc20_sources_and_metadata(co_cu111):
    assert [f.info["source"] for f in co_cu111] == ["md"] * 3 + ["relax"] * 4
    assert [f.info["step"] for f in co_cu111[:3]] == [8, 11, 14]
    relax = co_cu111[3:]
    assert [f.info["path"] for f in relax] == [0, 0, 1, 1]
    assert all(f.info["step"] <= 12 for f in relax)
    assert {f.info["system"] for f in co_cu111} == {"CO/Cu(111)"}
    assert {f.info["method"] for f in co_cu111} == {"EMT"}
    assert all("temperature" not in f.info for f in relax)


def test_oc20_relaxation_paths_start_from_every_site_lifted():
    frames = generate_oc20("Cu", "111", "CO", n_md=0, n_relax=4, n_relax_paths=4, relax_sites="all", lift=0.5,
                           rattle=0.0, max_relax_steps=12, seed=0, progress=False)
    assert [f.info["site"] for f in frames] == ["ontop", "bridge", "fcc", "hcp"]
    lifts = []
    for frame in frames:  # one frame per path: its start, the adsorbate above its site and raised rigidly
        assert frame.info["step"] == 0
        built, _ = build_slab("Cu", "111", "CO", site=frame.info["site"])
        shift = frame.positions - built.positions
        adsorbate = frame.get_tags() == 2
        np.testing.assert_allclose(shift[~adsorbate], 0.0, atol=1e-12)
        np.testing.assert_allclose(shift[adsorbate, :2], 0.0, atol=1e-12)
        assert np.ptp(shift[adsorbate, 2]) < 1e-12
        lifts.append(shift[adsorbate, 2][0])
    assert 0 <= min(lifts) and max(lifts) <= 0.5 and np.ptp(lifts) > 1e-3  # a draw per path


def test_oc20_labels_match_a_fresh_emt_single_point(co_cu111):
    for frame in (co_cu111[1], co_cu111[-1]):
        labels = get_labels(frame)
        assert set(labels) == {"energy", "forces", "stress"}
        atoms = frame.copy()
        atoms.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(labels["energy"], abs=1e-10)
        forces = atoms.get_forces(apply_constraint=False)
        np.testing.assert_allclose(forces, labels["forces"], atol=1e-10)
        assert np.abs(forces[frame.get_tags() == 0]).max() > 1e-3  # raw forces, also on fixed atoms
        np.testing.assert_allclose(atoms.get_stress(), labels["stress"], atol=1e-12)


def test_written_file_round_trips(tmp_path, co_cu111):
    path = tmp_path / "out.xyz"
    assert write_frames(co_cu111, path) == len(co_cu111)
    back = read(path, ":")
    assert len(back) == len(co_cu111)
    for a, b in zip(co_cu111, back):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)  # extxyz writes 8 decimals
        np.testing.assert_array_equal(b.get_tags(), a.get_tags())
        np.testing.assert_array_equal(b.constraints[0].index, a.constraints[0].index)
        for key, value in get_labels(a).items():
            np.testing.assert_allclose(get_labels(b)[key], value, rtol=1e-12, atol=1e-8)
        assert {k: b.info[k] for k in a.info} == a.info


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def md17(seed, name):
        write_frames(iter_md17("ethanol", 2, seed=seed, **TINY_MD17), tmp_path / name)
        return (tmp_path / name).read_bytes()

    def oc20(seed, name):
        write_frames(iter_oc20(seed=seed, **{**TINY_OC20, "n_md": 2, "n_relax": 2}), tmp_path / name)
        return (tmp_path / name).read_bytes()

    assert md17(0, "a.xyz") == md17(0, "b.xyz") != md17(1, "c.xyz")
    assert oc20(0, "d.xyz") == oc20(0, "e.xyz") != oc20(1, "f.xyz")


def test_xtb_runs_serial_and_restores_the_thread_count():
    runtime = ctypes.CDLL(_libtblite.__file__)
    before = runtime.omp_get_max_threads()
    seen = [runtime.omp_get_max_threads() for _ in iter_md17("ethanol", 2, **TINY_MD17)]
    assert seen == [1, 1] and runtime.omp_get_max_threads() == before
    with serial_openmp():
        assert runtime.omp_get_max_threads() == 1
    assert runtime.omp_get_max_threads() == before


def test_failure_mid_generation_keeps_the_old_file(tmp_path, ethanol):
    path = tmp_path / "good.xyz"
    write(path, ethanol[0], format="extxyz")
    good = path.read_bytes()

    def broken():
        yield from iter_md17("ethanol", 2, seed=0, **TINY_MD17)
        raise RuntimeError("calculator died")

    with pytest.raises(RuntimeError, match="calculator died"):
        write_frames(broken(), path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["good.xyz"]  # no temporary file left behind


def test_builtin_molecules_load():
    formulas = {name: load_molecule(name)[0].get_chemical_formula(mode="hill") for name in MOLECULES}
    assert formulas == {
        "aspirin": "C9H8O4", "benzene": "C6H6", "ethanol": "C2H6O", "malonaldehyde": "C3H4O2",
        "naphthalene": "C10H8", "salicylic_acid": "C7H6O3", "toluene": "C7H8", "uracil": "C4H4N2O2",
    }


def test_molecule_names_g2_names_and_files(tmp_path):
    assert load_molecule("Salicylic-Acid")[1] == load_molecule("salicylic_acid")[1] == "salicylic_acid"
    assert load_molecule("ETHANOL")[1] == "ethanol"
    water, name = load_molecule("H2O")
    assert name == "H2O" and water.get_chemical_formula() == "H2O"
    path = tmp_path / "mine.xyz"
    write(path, water)
    atoms, name = load_molecule(path)
    assert name == "mine" and atoms.get_chemical_formula() == "H2O" and atoms.calc is None


def test_unknown_molecule_lists_the_builtin_names():
    with pytest.raises(DataError, match="unknown molecule 'unobtainium'.*aspirin.*uracil"):
        load_molecule("unobtainium")
    with pytest.raises(DataError):
        iter_md17("unobtainium", 2)  # checked at call time, before any MD
    with pytest.raises(FileNotFoundError):
        load_molecule("missing/molecule.xyz")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metal="Fe"), "unknown metal 'Fe'.*Cu"),
        (dict(adsorbate="XeF6"), "unknown adsorbate 'XeF6'.*CO"),
        (dict(facet="110"), "unknown facet '110'"),
        (dict(facet="100", site="fcc"), "unknown site on fcc.100. 'fcc'.*hollow"),
    ],
)
def test_unknown_system_is_a_clear_error(kwargs, message):
    with pytest.raises(DataError, match=message):
        iter_oc20(**kwargs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: iter_md17("ethanol", 0),
        lambda: iter_md17("ethanol", 2, timestep=0),
        lambda: iter_md17("ethanol", 2, seed=-1),
        lambda: iter_oc20(n_md=0, n_relax=0),
        lambda: iter_oc20(fixed_layers=4),
        lambda: iter_oc20(optimizer="newton"),
        lambda: iter_oc20(lift=-0.1),
        lambda: iter_oc20(relax_sites="random"),
    ],
)
def test_bad_settings_are_config_errors(call):
    with pytest.raises((ConfigError, DataError)):
        call()


def test_emt_lattice_constant_is_stress_free():
    a = emt_lattice_constant("Cu")
    assert 3.5 < a < 3.7
    atoms = bulk("Cu", "fcc", a=a)
    atoms.calc = EMT()
    assert abs(atoms.get_stress()[0]) < 1e-8


def test_fcc100_hollow_slab():
    slab, name = build_slab("Pt", "fcc100", "o", size=(2, 2), layers=3, fixed_layers=1)
    assert name == "O/Pt(100)"
    assert np.bincount(slab.get_tags()).tolist() == [4, 8, 1]
    assert len(slab.constraints[0].index) == 4


def test_bulk_frames_are_strained_labelled_and_match_emt():
    frames = list(iter_bulk("Cu", 4, n_cells=2, repeat=(1, 1, 1), strain=0.02, interval=2, equilibration=3,
                            seed=0, progress=False))
    assert len(frames) == 4 and [f.info["cell_index"] for f in frames] == [0, 0, 1, 1]
    a = emt_lattice_constant("Cu")
    for frame in frames:
        assert frame.pbc.all() and len(frame) == 4
        eps = np.linalg.solve(a * np.eye(3), frame.cell.array) - np.eye(3)  # cell = a (1 + eps)
        assert np.allclose(eps, eps.T, atol=1e-12) and 0 < np.abs(eps).max() <= 0.02
        labels = get_labels(frame)
        fresh = frame.copy()
        fresh.calc = EMT()
        assert labels["energy"] == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
        assert np.allclose(labels["stress"], fresh.get_stress(), atol=1e-12)
    assert not np.allclose(frames[0].cell.array, frames[2].cell.array)  # each cell has its own strain
    assert np.allclose(frames[0].cell.array, frames[1].cell.array)
    with pytest.raises(ConfigError, match="strain"):
        iter_bulk(strain=0.6)
    with pytest.raises(DataError, match="unknown metal 'Fe'"):
        iter_bulk("Fe")
