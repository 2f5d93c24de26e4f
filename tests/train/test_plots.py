"""What the learning curve and parity PNGs show, read back from the series saved beside them."""

import json

import numpy as np
import pytest
import torch

import mlff.train.plots as plots
from mlff.data.generate import generate_md17
from mlff.models.checkpoint import load_checkpoint
from mlff.plotting import read_data
from mlff.train.run import train
from tests.train.test_training import config


@pytest.fixture(scope="module")
def run(tmp_path_factory, xtb_data):
    tmp_path = tmp_path_factory.mktemp("plots")
    table = train(config(tmp_path, xtb_data, epochs=3), command="mlff train cfg.yaml")
    return tmp_path / "run", table


def test_learning_curve_has_train_and_validation_errors_and_the_learning_rate(run):
    out, _ = run
    history = json.loads((out / "metrics.json").read_text())["history"]
    data = read_data(out / "learning_curve.png")
    assert data["step"] == [h["step"] for h in history] and data["lr"] == [h["lr"] for h in history]
    assert data["val_force_mae"] == [h["val_force_mae"] for h in history]
    assert data["train_force_mae"] == [h["train_force_mae"] for h in history]
    assert all(t > 0 for t in data["train_energy_mae"])
    assert data["caption"].startswith("mlff train cfg.yaml · equiformer_v2 small")


def test_parity_plots_name_the_split_and_match_the_test_errors(run):
    out, table = run
    forces = read_data(out / "parity_forces.png")
    assert forces["split"] == "test" and forces["view"] == "scatter by element"
    assert forces["mae"] == pytest.approx(table["test"]["force_mae"], rel=1e-5)
    assert sorted(set(forces["elements"])) == [1, 6, 8] and len(forces["elements"]) == len(forces["reference"])
    energy = read_data(out / "parity_energy.png")
    assert energy["mae"] == pytest.approx(table["test"]["energy_mae"], rel=1e-5) and energy["points"] == 5


def test_many_points_switch_to_a_log_density_view(run, monkeypatch, tmp_path):
    out, _ = run
    model = load_checkpoint(out / "model.pt")
    monkeypatch.setattr(plots, "DENSITY_POINTS", 10)
    structures = generate_md17("ethanol", 2, temperature=300, interval=5, equilibration=5, seed=9, progress=False)
    plots.parity_plots(model, structures, tmp_path / "p", torch.device("cpu"), torch.float32, "x", "caption")
    data = read_data(tmp_path / "p_forces.png")
    assert data["view"] == "log density" and data["points"] == 54 and "reference" not in data
    assert np.isfinite(data["mae"])
