"""OC20's S2EF and relaxation metrics on cases worked out by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111
from ase.constraints import FixAtoms

from mlff.data.graph import AtomicGraph
from mlff.data.labels import set_labels
from mlff.train.oc20_metrics import ADWT_THRESHOLDS, S2EFMetrics, adwt, mean_distance, relaxation_metrics


def slab():
    atoms = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.5, "fcc")
    atoms.set_constraint(FixAtoms(mask=atoms.get_tags() == 3))  # 4 fixed, 9 free
    forces = np.random.default_rng(0).standard_normal((len(atoms), 3))
    return set_labels(atoms, energy=-5.0, forces=forces)


def prediction(graph, energy_error, force_change):
    forces = graph.forces.clone()
    for atom, delta in force_change.items():
        forces[atom] += torch.tensor(delta, dtype=forces.dtype)
    return {"energy": graph.energy + torch.tensor(energy_error, dtype=graph.energy.dtype), "forces": forces}


def test_fixed_atoms_do_not_count_and_efwt_needs_energy_and_every_free_component():
    graph = AtomicGraph.from_atoms([slab(), slab()], cutoff=3.0, dtype=torch.float64)
    metrics = S2EFMetrics()
    # structure 0: energy within 0.02 eV, a huge error on fixed atom 0 only -> within threshold
    # structure 1: energy within, free atom 13 + 4 (its 5th atom) off by 0.05 eV/Å in x -> not within
    metrics.update(prediction(graph, [0.01, -0.015], {0: [9.0, 9.0, 9.0], 17: [0.05, 0.0, 0.0]}), graph)
    result = metrics.result()
    assert result["structures"] == 2 and result["free_atoms"] == 18
    assert result["energy_mae"] == pytest.approx(0.0125)
    assert result["force_mae"] == pytest.approx(0.05 / (18 * 3))
    assert result["efwt"] == 0.5
    assert 0.99 < result["force_cos"] < 1.0  # one force turned a little; the fixed atom's does not count


def test_energy_outside_its_threshold_fails_efwt():
    graph = AtomicGraph.from_atoms(slab(), cutoff=3.0, dtype=torch.float64)
    metrics = S2EFMetrics()
    metrics.update(prediction(graph, [0.025], {}), graph)
    assert metrics.result()["efwt"] == 0 and metrics.result()["force_cos"] == pytest.approx(1.0)


def test_adwt_averages_the_fraction_below_each_threshold():
    assert len(ADWT_THRESHOLDS) == 490 and ADWT_THRESHOLDS[0] == 0.01 and ADWT_THRESHOLDS[-1] == pytest.approx(0.499)
    # 0.005 is below all 490 thresholds, 0.2005 below the 299 from 0.201 on, 1.0 below none
    assert adwt([0.005, 0.2005, 1.0]) == pytest.approx((490 + 299) / (3 * 490))


def test_mean_distance_uses_the_minimum_image_and_free_atoms_only():
    reference = slab()
    relaxed = reference.copy()
    relaxed.positions[12] += reference.cell[0] + [0.3, 0.0, 0.0]  # the O atom: a periodic image, moved 0.3 Å
    relaxed.positions[0] += [5.0, 0.0, 0.0]  # a fixed atom: not counted
    assert mean_distance(relaxed, reference) == pytest.approx(0.3 / 9)
    metrics = relaxation_metrics([relaxed], [reference], [-5.01], [-5.0], [True], [12])
    assert metrics["energy_mae"] == pytest.approx(0.01) and metrics["ewt"] == 1.0 and metrics["mean_steps"] == 12
    assert metrics["adwt"] == pytest.approx(adwt([0.3 / 9]))


def test_mlff_eval_oc20_reads_an_aselmdb_and_prints_the_s2ef_metrics(tmp_path, capsys):
    pytest.importorskip("ase_db_backends", reason="ase-db-backends is not installed (pip install 'mlff[oc20]')")
    from ase.calculators.emt import EMT

    from mlff.calculator import load
    from mlff.cli import main
    from mlff.data.formats import read_structures, write_structures
    from mlff.train.evaluation import evaluate_s2ef

    frames = []
    for seed in range(3):
        atoms = slab()
        atoms.rattle(0.05, seed=seed)
        atoms.calc = EMT()
        frames.append(set_labels(atoms, energy=atoms.get_potential_energy(),
                                 forces=atoms.get_forces(apply_constraint=False)))
    path = tmp_path / "s2ef.aselmdb"
    write_structures(path, frames)
    assert main(["eval", "co-cu111-emt", str(path), "--oc20"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    expected = evaluate_s2ef(load("co-cu111-emt"), read_structures(path), 16, torch.device("cpu"), torch.float32)
    assert expected["free_atoms"] == 27
    assert line == (f"  S2EF: energy MAE {expected['energy_mae']:.4f} eV, force MAE {expected['force_mae']:.4f} eV/Å "
                    f"and cosine {expected['force_cos']:.4f} over 27 free atoms, EFwT {100 * expected['efwt']:.1f} %")


def test_mlff_eval_oc20_names_the_frame_without_forces(tmp_path, capsys):
    from mlff.cli import main
    from mlff.data.formats import write_structures

    frames = [set_labels(slab(), energy=-1.0, forces=np.zeros((len(slab()), 3))), set_labels(slab(), energy=-2.0)]
    path = tmp_path / "s2ef.xyz"
    write_structures(path, frames)
    assert main(["eval", "co-cu111-emt", str(path), "--oc20"]) == 2
    assert re.search(r"frame 1 of .*s2ef\.xyz.*forces", capsys.readouterr().err)
