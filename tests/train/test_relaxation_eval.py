"""IS2RS/IS2RE by relaxation: EMT references, relaxed again, batched and one at a time."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlff.calculator import MLFFCalculator
from mlff.cli import main
from mlff.data.generate.relaxations import iter_relaxations, relaxation_pairs
from mlff.errors import DataError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.relaxation_eval import evaluate_relaxations


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
    assert [p[0].info["system"] for p in pairs] == ["O/Cu(111)", "O/Pt(111)"]


def test_the_reference_method_itself_scores_as_a_perfect_model(frames):
    """EMT relaxing EMT's starts again (FIRE, not the references' LBFGS) lands on the references."""
    metrics = evaluate_relaxations(EMT(), relaxation_pairs(frames), fmax=0.01, steps=500, batched=False)
    assert metrics["adwt"] > 0.99 and metrics["mean_distance"] < 0.01
    assert metrics["energy_mae"] < 2e-3 and metrics["ewt"] == 1.0 and metrics["converged"] == 1.0


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
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("  IS2RS/IS2RE (1 relaxations, batched): ADwT ") and "per relaxation" in line
