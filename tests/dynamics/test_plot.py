"""What the MD and relaxation PNGs show, read back from the series saved beside them."""

import numpy as np
import pytest

from mlff.cli import main
from mlff.dynamics import load_deck, run_md, run_relax
from mlff.dynamics.plot import running_mean
from mlff.plotting import MAX_POINTS, read_data, thinned
from tests.dynamics.decks import TINY, fcc_box, write_deck


def test_nve_panel_is_the_total_energy_change_per_atom_with_the_summary_drift(tmp_path):
    deck = write_deck(tmp_path, md={"ensemble": "nve", "timestep": 1.0, "steps": 80, "temperature": 400})
    summary = run_md(load_deck(deck), command="mlff md deck.yaml")
    data = read_data(tmp_path / "run.png")
    total = np.asarray(summary.series["total"])
    np.testing.assert_allclose(data["total_minus_initial_mev_atom"], 1000 * (total - total[0]) / 9, rtol=0, atol=1e-9)
    t, line = np.asarray(data["time_ps"]), np.asarray(data["drift_line_mev_atom"])
    assert np.polyfit(t, line, 1)[0] == pytest.approx(summary.drift_mev_atom_ps, rel=1e-9)
    assert data["drift_mev_atom_ps"] == summary.drift_mev_atom_ps != 0
    assert data["target_temperature_K"] == 400  # NVE: the initial temperature
    assert data["caption"] == "mlff md deck.yaml · potential untrained equiformer_v2 small"
    for key in ("potential_fluctuation_mev_atom", "kinetic_fluctuation_mev_atom"):
        assert abs(np.mean(data[key])) < 1e-9 and np.ptp(data[key]) > 0


def test_thermostat_run_has_no_drift_line_and_its_target(tmp_path):
    md = {"ensemble": "langevin", "timestep": 1.0, "steps": 20, "temperature": 250, "initial_temperature": 50}
    run_md(load_deck(write_deck(tmp_path, md=md)))
    data = read_data(tmp_path / "run.png")
    assert "drift_line_mev_atom" not in data and data["target_temperature_K"] == 250


def test_npt_adds_volume_and_pressure_with_the_target(tmp_path):
    structure = {"system": None, "file": fcc_box(tmp_path, "Au", 6.0)}
    md = {"ensemble": "npt", "steps": 10, "timestep": 5.0, "temperature": 2000, "pressure": 0.1, "pdamp": 50}
    summary = run_md(load_deck(write_deck(tmp_path, structure=structure, potential={"options": TINY, "species": [79]},
                                          md=md)))
    data = read_data(tmp_path / "run.png")
    assert data["volume_A3"] == summary.series["volume"] and data["target_pressure_GPa"] == 0.1


def test_relaxation_panel_has_integer_steps_and_the_deck_fmax(tmp_path):
    structure = {"system": None, "file": fcc_box(tmp_path, "Cu", 3.7, rattle=0.05)}
    relax = {"optimizer": "FIRE", "fmax": 0.02, "steps": 50, "cell": True}
    summary = run_relax(load_deck(write_deck(tmp_path, structure=structure, relax=relax,
                                             potential={"options": TINY, "species": [29]})), command="mlff relax x")
    data = read_data(tmp_path / "run.png")
    assert data["fmax_threshold"] == 0.02 and data["step"] == list(range(len(data["step"])))
    assert data["energy_minus_initial_meV"][0] == 0
    energy = np.asarray(summary.series["potential"])
    np.testing.assert_allclose(data["energy_minus_initial_meV"], 1000 * (energy - energy[0]), rtol=0, atol=1e-9)
    assert len(data["volume_A3"]) == len(data["pressure_GPa"]) == len(data["step"])


def test_long_series_are_thinned_evenly_keeping_the_ends():
    t = np.arange(10 * MAX_POINTS)
    (thin,) = thinned(t)
    assert len(thin) <= MAX_POINTS + 1 and thin[0] == 0 and thin[-1] == t[-1]
    assert np.ptp(np.diff(thin)) <= 1  # evenly spaced


def test_running_mean():
    np.testing.assert_allclose(running_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


def test_cli_caption_names_the_deck(tmp_path):
    deck = write_deck(tmp_path, md={"ensemble": "nve", "timestep": 1.0, "steps": 5, "temperature": 300})
    assert main(["md", str(deck)]) == 0
    assert read_data(tmp_path / "run.png")["caption"].startswith(f"mlff md {deck} · potential")
