"""IS2RS/IS2RE by relaxation: EMT references, relaxed again, batched and one at a time."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.optimize import FIRE

from mlff.calculator import MLFFCalculator
from mlff.cli import main
from mlff.data.generate.oc20 import build_slab
from mlff.data.generate.relaxations import iter_relaxations, labelling_method, relaxation_pairs
from mlff.errors import DataError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.oc20_metrics import free_mask
from mlff.train.relaxation_eval import SPURIOUS_GAIN, evaluate_relaxations, optimizer_note


@pytest.fixture(scope="module")
def frames():
    return list(iter_relaxations(["Cu", "Pt"], ["O"], per_system=1, size=(2, 2), layers=3, progress=False))


def test_each_relaxation_gives_an_initial_and_a_converged_relaxed_frame(frames):
    pairs = relaxation_pairs(frames)
    assert len(frames) == 4 and len(pairs) == 2
    for initial, relaxed in pairs:
        assert relaxed.info["converged"] and relaxed.info["steps"] > 0
        free = relaxed.get_tags() > 0
        assert np.abs(relaxed.get_forces()[free]).max() < 0.02  # the reference fmax
        assert relaxed.get_potential_energy() < initial.get_potential_energy()
        assert (relaxed.info["optimizer"], relaxed.info["fmax"]) == ("LBFGS", 0.02)
    assert [p[0].info["system"] for p in pairs] == ["O/Cu(111)", "O/Pt(111)"]


def test_starts_are_lifted_and_rattled_at_a_recorded_site_with_the_fixed_layers_in_place(frames):
    for (initial, _), metal in zip(relaxation_pairs(frames), ("Cu", "Pt")):
        built, _ = build_slab(metal, "111", "O", site=initial.info["site"], size=(2, 2), layers=3)
        fixed, adsorbate = ~free_mask(built), built.get_tags() == 2
        np.testing.assert_array_equal(initial.positions[fixed], built.positions[fixed])
        height = initial.positions[adsorbate, 2] - built.positions[adsorbate, 2]
        assert -0.4 < height.min() and height.max() < 0.5 + 0.4  # a lift in [0, 0.5] Å, a 0.1 Å rattle
        moved = np.linalg.norm(initial.positions[~fixed] - built.positions[~fixed], axis=1)
        assert (moved > 0).all()


def test_the_reference_method_itself_scores_as_a_perfect_model(frames):
    """EMT relaxing EMT's starts again (FIRE, not the references' LBFGS) lands on the references."""
    metrics = evaluate_relaxations(EMT(), relaxation_pairs(frames), fmax=0.01, steps=500, batched=False)
    assert metrics["adwt"] > 0.99 and metrics["mean_distance"] < 0.01
    assert metrics["energy_mae"] < 2e-3 and metrics["ewt"] == 1.0 and metrics["converged"] == 1.0


def test_the_method_checks_score_the_method_itself_as_perfect(frames):
    """Against EMT relaxed by the same FIRE, EMT's own relaxations match exactly and end at EMT minima."""
    metrics = evaluate_relaxations(EMT(), relaxation_pairs(frames), fmax=0.05, steps=300, batched=False,
                                   method=labelling_method(relaxation_pairs(frames)))
    assert metrics["method"] == "EMT" and metrics["method_converged"] == 1.0
    assert metrics["matched_adwt"] == 1.0 and metrics["matched_mean_distance"] == 0.0
    assert metrics["matched_energy_mae"] == 0.0 and metrics["end_energy_mae"] < 1e-10  # the same EMT, round-off
    assert metrics["end_fmax_max"] < 0.05 and metrics["end_gain_max"] < 1e-3 and metrics["spurious"] == 0


class Flat(Calculator):
    """A 'model' whose every structure is a minimum: its relaxations stop where they start."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}


def test_end_points_that_are_not_minima_of_the_method_are_counted_as_spurious(frames):
    pairs = relaxation_pairs(frames)
    metrics = evaluate_relaxations(Flat(), pairs, fmax=0.05, steps=300, batched=False, method="EMT")
    gains, initial_fmax, initial_energies = [], [], []
    for initial, _ in pairs:  # the flat model ends at the starts: EMT's gain is its relaxation from there
        atoms = initial.copy()
        atoms.calc = EMT()
        initial_energies.append(atoms.get_potential_energy())
        initial_fmax.append(np.linalg.norm(atoms.get_forces()[atoms.get_tags() > 0], axis=1).max())
        FIRE(atoms, logfile=None).run(fmax=0.05, steps=300)
        gains.append(initial_energies[-1] - atoms.get_potential_energy())
    assert min(gains) > SPURIOUS_GAIN  # rattled and lifted starts are far from a minimum
    assert metrics["spurious"] == len(pairs) and metrics["end_gain_max"] == pytest.approx(max(gains))
    assert metrics["end_fmax_max"] == pytest.approx(max(initial_fmax))
    assert metrics["end_energy_mae"] == pytest.approx(np.mean(np.abs(initial_energies)))
    assert metrics["matched_mean_distance"] > 0.05


def test_the_labelling_method_and_the_optimizer_are_read_from_the_frames(frames):
    pairs = relaxation_pairs(frames)
    assert labelling_method(pairs) == "EMT"
    assert "LBFGS to 0.02 eV/Å, these with FIRE to 0.05 eV/Å" in optimizer_note(pairs, 0.05)
    fire = [(initial, relaxed.copy()) for initial, relaxed in pairs]
    for _, relaxed in fire:
        relaxed.info.update(optimizer="FIRE", fmax=0.05)
    assert optimizer_note(fire, 0.05) is None
    unlabelled = [(initial.copy(), relaxed) for initial, relaxed in pairs]
    del unlabelled[1][0].info["method"]
    with pytest.raises(DataError, match="relax.xyz: the relaxation frames need one labelling method in info "
                                        r"'method', got \['EMT', 'None'\]"):
        labelling_method(unlabelled, "relax.xyz")


def test_batched_and_one_at_a_time_relax_alike(frames):
    network = build_network("equiformer_v2", preset="small", species=[8, 29, 78], num_layers=1, channels=8, lmax=2,
                            mmax=1, grid_resolution=6)
    calc = MLFFCalculator(EnergyModel(network, e0={8: -1.0, 29: -2.0, 78: -3.0}), dtype="float64")
    pairs = relaxation_pairs(frames)
    batched = evaluate_relaxations(calc, pairs, fmax=0.05, steps=20, batched=True)
    serial = evaluate_relaxations(calc, pairs, fmax=0.05, steps=20, batched=False)
    for key in ("adwt", "mean_distance", "energy_mae", "converged", "mean_steps"):
        assert batched[key] == pytest.approx(serial[key], rel=1e-6, abs=1e-9), key


def test_broken_relaxation_files_are_named(frames):
    with pytest.raises(DataError, match="relaxation 1 has no 'relaxed' frame"):
        relaxation_pairs(frames[:3])
    with pytest.raises(DataError, match="frame 2 of the data: relaxation 0 has a second 'initial' frame"):
        relaxation_pairs([frames[0], frames[1], frames[0]])
    bare = frames[0].copy()
    bare.info.clear()
    with pytest.raises(DataError, match="frame 0 of the data: a relaxation frame needs info 'relax_id' and 'stage'"):
        relaxation_pairs([bare])


def test_cli_generates_and_evaluates_relaxations(tmp_path, capsys):
    path = tmp_path / "relax.xyz"
    assert main(["data", "generate", "relaxations", "--metals", "Cu", "--adsorbates", "CO", "--per-system", "1",
                 "--no-progress", "-o", str(path)]) == 0
    assert main(["eval", "co-cu111-emt", str(path), "--relax", "--relax-steps", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("  IS2RS/IS2RE (1 relaxations, batched): ADwT ") and "per relaxation" in lines[-2]
    assert lines[-1].startswith("  (the references were relaxed with LBFGS to 0.02 eV/Å, these with FIRE")
    assert main(["eval", "co-cu111-emt", str(path), "--relax", "--relax-steps", "50", "--check-method"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("  against EMT relaxed with the same FIRE from each start (")
    assert lines[-1].startswith("  EMT at the model's end points: energy error MAE ") and "spurious minima" in lines[-1]
