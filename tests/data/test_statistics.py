"""Per-element reference energies and dataset statistics against values computed by hand."""

import json
import logging

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.data import chemical_symbols
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mlff.data.labels import get_labels, set_labels
from mlff.data.statistics import DatasetStatistics, EnergiesByComposition, compute_statistics, fit_e0
from mlff.errors import DataError
from mlff.testing.structures import co_on_cu111

TRUE_E0 = {13: -2.25, 28: -5.5, 29: -3.75}  # Al, Ni, Cu


def synthetic(counts: dict[int, int], energy: float | None) -> Atoms:
    """A structure with the given composition (positions irrelevant) and total energy."""
    numbers = [z for z, c in counts.items() for _ in range(c)]
    atoms = Atoms(numbers=numbers, positions=np.arange(3 * len(numbers), dtype=float).reshape(-1, 3))
    return set_labels(atoms, energy=energy) if energy is not None else atoms


def compositions(rng, n):
    return [{z: int(rng.integers(0, 6)) + (z == 29) for z in TRUE_E0} for _ in range(n)]


# ------------------------------------------------------------------------------------- fit_e0
def rank_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mlff.data.statistics" and r.levelno == logging.WARNING]


def test_fit_e0_recovers_exact_reference_energies(caplog):
    rng = np.random.default_rng(0)
    structures = [synthetic(c, sum(TRUE_E0[z] * k for z, k in c.items())) for c in compositions(rng, 12)]
    structures.append(synthetic({29: 3}, None))  # unlabelled structures are ignored
    e0 = fit_e0(structures)
    assert rank_warnings(caplog) == []  # full rank
    assert sorted(e0) == [13, 28, 29]
    for z, value in TRUE_E0.items():
        assert e0[z] == pytest.approx(value, abs=1e-10)
        assert isinstance(e0[z], float) and isinstance(z, int)


def test_fit_e0_with_noise_is_close():
    rng = np.random.default_rng(1)
    structures = []
    for counts in compositions(rng, 200):
        energy = sum(TRUE_E0[z] * k for z, k in counts.items()) + rng.normal(0.0, 0.02)
        structures.append(synthetic(counts, energy))
    e0 = fit_e0(structures)
    for z, value in TRUE_E0.items():
        assert e0[z] == pytest.approx(value, abs=0.01)
        assert e0[z] != pytest.approx(value, abs=1e-8)  # noise really was there


def test_fit_e0_extra_species_and_dependent_compositions(caplog):
    rng = np.random.default_rng(2)
    structures = [synthetic(c, sum(TRUE_E0[z] * k for z, k in c.items())) for c in compositions(rng, 10)]
    e0 = fit_e0(structures, species=[29, 28, 13, 79])
    (message,) = rank_warnings(caplog)
    assert "determine only 3 of 4 E0s: those of Au (79) are not separately determined" in message
    assert e0[79] == 0.0 and e0[29] == pytest.approx(TRUE_E0[29], abs=1e-10)
    caplog.clear()
    # CuAl always 1:1, and a single composition: only the sums are determined, and they are recovered
    for pairs in ([synthetic({29: k, 13: k}, k * (TRUE_E0[29] + TRUE_E0[13])) for k in (1, 2, 3)],
                  [synthetic({29: 1, 13: 1}, TRUE_E0[29] + TRUE_E0[13] + noise) for noise in (-0.01, 0.01)]):
        e0 = fit_e0(pairs)
        assert e0[29] + e0[13] == pytest.approx(TRUE_E0[29] + TRUE_E0[13], abs=1e-10)
        (message,) = rank_warnings(caplog)
        assert "only 1 of 2 E0s: those of Al (13), Cu (29) are not separately determined" in message
        assert "minimum-norm" in message and "summed E0s of every composition in the data are still exact" in message
        caplog.clear()
    # Ni fixed by pure-Ni structures, Cu and Al only together
    mixed = pairs + [synthetic({28: k}, k * TRUE_E0[28]) for k in (1, 2)]
    assert fit_e0(mixed)[28] == pytest.approx(TRUE_E0[28], abs=1e-10)
    (message,) = rank_warnings(caplog)
    assert "only 2 of 3 E0s: those of Al (13), Cu (29) are" in message


def test_fit_e0_errors():
    with pytest.raises(DataError, match="no structure has an energy label"):
        fit_e0([synthetic({29: 2}, None)])
    with pytest.raises(DataError, match=r"structures contain Al \(13\), not among species Cu \(29\)"):
        fit_e0([synthetic({29: 2, 13: 1}, -1.0)], species=[29])


def test_energies_are_kept_per_composition_not_per_structure():
    """Many structures of few compositions: one summary per composition, and the same E0 and spread as a
    least-squares fit over every structure."""
    rng = np.random.default_rng(3)
    shapes = compositions(rng, 4)
    rows = [shapes[i % 4] for i in range(2000)]
    energies = [sum(TRUE_E0[z] * k for z, k in c.items()) + rng.normal(0, 0.05) for c in rows]
    groups = EnergiesByComposition()
    for c, e in zip(rows, energies):
        groups.add([z for z, k in c.items() for _ in range(k)], e)
    assert len(groups) == 2000 and len(groups._groups) == 4
    species = sorted(TRUE_E0)
    matrix = np.array([[c[z] for z in species] for c in rows], dtype=float)
    expected = np.linalg.lstsq(matrix, np.array(energies), rcond=None)[0]
    assert [groups.fit_e0()[z] for z in species] == pytest.approx(expected, abs=1e-9)
    e0 = dict(zip(species, expected))
    sizes = matrix.sum(1)
    shifted = (np.array(energies) - matrix @ expected) / sizes
    mean, std, raw = groups.per_atom(e0)
    assert (mean, std, raw) == pytest.approx((shifted.mean(), shifted.std(), np.mean(np.array(energies) / sizes)), abs=1e-12)


# ------------------------------------------------------------------------------------- statistics
def emt(atoms: Atoms, forces: bool = True) -> Atoms:
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy()}
    if forces:
        results["forces"] = atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


@pytest.fixture(scope="module")
def dataset():
    structures = []
    for k in range(3):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        structures.append(emt(atoms))
    alloy = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    alloy.numbers[[1, 4]] = 13
    alloy.rattle(0.05, seed=5)
    structures.append(emt(alloy))
    structures.append(emt(co_on_cu111((2, 2, 2), a=None, vacuum=5.0)))
    structures.append(emt(molecule("CO2"), forces=False))  # C:O differs from the slab's CO
    return structures


def test_statistics_match_hand_computed_values(dataset):
    cutoff = 4.5
    e0 = {29: -0.5, 13: -0.25, 6: -1.0, 8: -2.0}
    stats = compute_statistics(dataset, cutoff=cutoff, e0=e0)
    energies = np.array([get_labels(a)["energy"] for a in dataset])
    sizes = np.array([len(a) for a in dataset])
    shifted = (energies - np.array([sum(e0[z] for z in a.numbers) for a in dataset])) / sizes
    forces = np.concatenate([get_labels(a)["forces"] for a in dataset[:-1]])  # the last has no forces
    neighbours = sum(len(ase_neighbor_list("i", a, cutoff)) for a in dataset)

    assert stats.species == [6, 8, 13, 29]
    assert stats.num_structures == 6 and stats.num_atoms == sizes.sum() == 4 * 3 + 8 + 10 + 3
    assert stats.e0 == e0 and stats.cutoff == cutoff
    assert stats.energy_per_atom_mean == pytest.approx(shifted.mean(), abs=1e-12)
    assert stats.energy_per_atom_std == pytest.approx(np.std(shifted), abs=1e-12)
    assert stats.raw_energy_per_atom_mean == pytest.approx(np.mean(energies / sizes), abs=1e-12)
    assert stats.force_rms == pytest.approx(np.sqrt(np.mean(forces**2)), abs=1e-12)
    assert stats.avg_num_neighbors == pytest.approx(neighbours / sizes.sum(), abs=1e-12)
    closest = {}  # by ASE's neighbour list, periodic images included
    for atoms in dataset:
        i, j, d = ase_neighbor_list("ijd", atoms, cutoff)
        for a, b, distance in zip(atoms.numbers[i], atoms.numbers[j], d):
            key = "-".join(chemical_symbols[z] for z in sorted((a, b)))
            closest[key] = min(closest.get(key, np.inf), distance)
    assert stats.closest_pairs.keys() == closest.keys()
    for pair, distance in closest.items():
        assert stats.closest_pairs[pair] == pytest.approx(distance, abs=1e-12)
    assert stats.closest_ratios()["C-O"] == pytest.approx(closest["C-O"] / (0.76 + 0.66), abs=1e-12)
    assert "closest C-O (Å)" in str(stats)


def test_statistics_fit_e0_when_not_given(dataset):
    stats = compute_statistics(dataset, cutoff=3.0)
    assert stats.e0 == pytest.approx(fit_e0(dataset))
    assert set(stats.e0) == {6, 8, 13, 29}


def test_missing_labels(dataset):
    no_forces = [emt(a.copy(), forces=False) for a in dataset[:3]]
    stats = compute_statistics(no_forces, cutoff=3.0)
    assert stats.force_rms is None and stats.energy_per_atom_std is not None
    unlabelled = [Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc) for a in dataset[:2]]
    stats = compute_statistics(unlabelled, cutoff=3.0)
    assert stats.e0 == {} and stats.force_rms is None
    assert stats.energy_per_atom_mean is None and stats.raw_energy_per_atom_mean is None
    assert stats.avg_num_neighbors == pytest.approx(12.0)  # fcc, first shell only at 3 Å
    assert "n/a" in stats.format()


def test_statistics_errors(dataset):
    with pytest.raises(DataError, match="empty dataset"):
        compute_statistics([], cutoff=3.0)
    with pytest.raises(DataError, match=r"e0 has no reference energy for C \(6\), O \(8\)"):
        compute_statistics(dataset, cutoff=3.0, e0={29: 0.0, 13: 0.0})


def test_to_dict_is_json_and_round_trips(dataset):
    stats = compute_statistics(dataset, cutoff=3.0)
    text = json.dumps(stats.to_dict())
    back = DatasetStatistics.from_dict(json.loads(text))
    assert back == stats


def test_format_is_a_readable_table(dataset):
    stats = compute_statistics(dataset, cutoff=3.0)
    table = str(stats)
    assert table == stats.format()
    assert "C (6), O (8), Al (13), Cu (29)" in table
    assert f"{stats.force_rms:.6f}" in table and f"{stats.e0[29]:.6f}" in table
    lines = table.splitlines()
    assert lines[0].split() == ["structures", "6"] and len(lines) == 8 + 4 + len(stats.closest_pairs)


def test_float32_energies_are_averaged_in_float64():
    groups = EnergiesByComposition()
    energies = [np.float32(-100000.0), np.float32(-100000.0) + np.float32(0.1953125)]
    for e in energies:
        groups.add([29, 29], e)
    mean, std, raw = groups.per_atom({29: 0.0})
    exact = np.array(energies, dtype=np.float64) / 2
    assert std == pytest.approx(exact.std(), rel=1e-12) and raw == pytest.approx(exact.mean(), rel=1e-15)
