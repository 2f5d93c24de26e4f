"""The MD/relaxation driver with real ASE integrators and optimizers, files on disk.

Thermostat and barostat statistics are in test_ensembles.py, bad input in test_inputs.py.
"""

import logging
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule

from mlff.cli import main
from mlff.dynamics import load_deck, run_md, run_relax
from mlff.dynamics.deck import PotentialSpec
from mlff.dynamics.runner import make_calculator
from mlff.errors import ConfigError
from mlff.runtime import allocator_mode, configure_allocator
from tests.dynamics.decks import TINY, fcc_box, write_deck

DECKS = Path(__file__).resolve().parents[2] / "md"


def test_nve_run_writes_trajectory_log_plot_and_small_drift(tmp_path):
    deck = load_deck(write_deck(tmp_path, md={"ensemble": "nve", "timestep": 0.25, "steps": 60, "temperature": 300}))
    summary = run_md(deck)
    frames = ase.io.read(tmp_path / "traj.xyz", ":")
    assert len(frames) == summary.frames == 13 and summary.stopped is None
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"
    log = (tmp_path / "run.log").read_text().splitlines()
    assert log[0].split()[:2] == ["Time[ps]", "Etot[eV]"] and len(log) == 14
    assert abs(summary.drift_mev_atom_ps) < 1.0
    total = np.asarray(summary.series["total"])
    assert np.ptp(total) / 9 < 1e-5  # float64, 0.25 fs: energy conserved to 1e-5 eV/atom


def test_npt_records_pressure_and_volume(tmp_path):
    structure = {"system": None, "file": fcc_box(tmp_path, "Au", 6.0)}
    potential = {"options": TINY, "species": [79]}
    md = {"ensemble": "npt", "steps": 10, "timestep": 5.0, "temperature": 2000, "pressure": 0.1, "pdamp": 50}
    summary = run_md(load_deck(write_deck(tmp_path, structure=structure, potential=potential, md=md)))
    assert summary.stopped is None and (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"
    frames = ase.io.read(tmp_path / "traj.xyz", ":")
    np.testing.assert_allclose(summary.series["volume"], [frame.get_volume() for frame in frames])  # steps 0, 5, 10
    assert np.all(np.diff(summary.series["volume"]) > 0)  # 0.46 GPa inside, 0.1 GPa outside
    log = (tmp_path / "run.log").read_text().splitlines()
    assert "stress [GPa]" in log[0] and len(log) == 4
    stress = np.array(log[-1].split()[-6:], dtype=float)  # ASE's MDLogger: ideal-gas term included
    assert summary.series["pressure"][-1] == pytest.approx(-stress[:3].mean(), abs=1e-3)  # printed to 1e-3


def test_guard_stops_and_keeps_the_last_good_frame(tmp_path):
    md = {"steps": 40, "temperature": 600, "timestep": 1.0}
    output = {"interval": 1, "log_interval": 1}
    run_md(load_deck(write_deck(tmp_path, md=md, output=output)))
    fmax = np.array([np.linalg.norm(f.get_forces(), axis=1).max() for f in ase.io.read(tmp_path / "traj.xyz", ":")])
    first_above = int(np.argmax(fmax > 0.5 * (fmax[0] + fmax.max())))
    assert first_above > 0, "the forces never grew: pick another setting"
    limit = float(0.5 * (fmax[0] + fmax.max()))
    summary = run_md(load_deck(write_deck(tmp_path, md=md, guard={"max_force": limit}, output=output)))
    assert summary.stopped.startswith("force of") and "exceeds the limit" in summary.stopped
    assert summary.steps == first_above
    frames = ase.io.read(tmp_path / "traj.xyz", ":")
    assert len(frames) == first_above + 1  # frames 0 .. first_above-1, then the last good one again
    assert np.linalg.norm(frames[-1].get_forces(), axis=1).max() <= limit


def test_crash_leaves_the_existing_trajectory_untouched(tmp_path, monkeypatch, caplog):
    old = tmp_path / "traj.xyz"
    old.write_text("previous good trajectory\n")
    deck = load_deck(write_deck(tmp_path, md={"steps": 20}))
    import mlff.dynamics.runner as runner

    calls = {"n": 0}
    real = runner.check

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "check", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_md(deck)
    assert old.read_text() == "previous good trajectory\n"
    partial = tmp_path / ".traj.xyz.partial.xyz"
    assert len(ase.io.read(partial, ":")) == 2  # frames 0 and 5 were written before the crash
    crash = [r for r in caplog.records if r.name == "mlff.dynamics.runner" and r.levelno == logging.ERROR]
    assert len(crash) == 1 and str(partial) in crash[0].getMessage()


def test_relaxation_with_fixed_bottom_layers(tmp_path):
    deck = load_deck(write_deck(
        tmp_path, structure={"system": "oc20:CO/Cu(111)"}, potential={"species": [6, 8, 29]},
        relax={"optimizer": "BFGS", "fmax": 0.05, "steps": 100},
        output={"interval": 1},
    ))
    summary = run_relax(deck)
    frames = ase.io.read(tmp_path / "traj.xyz", ":")
    fixed = frames[0].constraints[0].get_indices()
    assert len(fixed) == 18
    np.testing.assert_array_equal(frames[0].positions[fixed], frames[-1].positions[fixed])
    assert summary.converged and summary.series["fmax"][-1] < 0.05 < summary.series["fmax"][0]


def test_deck_errors_name_the_problem(tmp_path):
    bad = write_deck(tmp_path, md={"steps": 10, "tempreature": 300})
    with pytest.raises(ConfigError, match="unknown key md.tempreature"):
        load_deck(bad)
    bad = write_deck(tmp_path, md={"steps": "ten"})
    with pytest.raises(ConfigError, match="md.steps: expected int"):
        load_deck(bad)
    bad = write_deck(tmp_path, md={"ensemble": "nvx"})
    with pytest.raises(ConfigError, match="md.ensemble: 'nvx' is not one of 'nve', 'langevin', 'nose_hoover', 'npt'"):
        load_deck(bad)
    bad = write_deck(tmp_path, relax={"optimizer": "bfgs"})
    with pytest.raises(ConfigError, match="relax.optimizer: 'bfgs' is not one of 'BFGS', 'FIRE', 'LBFGS'"):
        load_deck(bad)
    bad = write_deck(tmp_path, md={}, potential={"name": "mace"})
    with pytest.raises(ConfigError, match="name 'mace' is not a registered model; one of 'equiformer_v2', 'est'"):
        load_deck(bad)
    assert main(["md", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize("deck", sorted(p.name for p in DECKS.glob("*.yaml")))
def test_shipped_decks_are_valid(deck):
    loaded = load_deck(DECKS / deck)
    assert (loaded.md is None) != (loaded.relax is None)


def test_cli_md_and_info(tmp_path, checkpoint_file, capsys):
    deck = write_deck(tmp_path, md={"steps": 5}, potential={"preset": None, "model": str(checkpoint_file)})
    assert main(["md", str(deck), "--no-progress"]) == 0
    assert "md: 5 steps" in capsys.readouterr().out
    assert main(["info", str(checkpoint_file)]) == 0
    out = capsys.readouterr().out
    assert "species      H, C, O" in out and "cutoff       5.0 Å" in out and '"note": "card"' in out
    assert main(["info", "co-cu111-emt"]) == 0  # a shipped potential, by name
    assert "species      C, O, Cu" in capsys.readouterr().out


def test_cli_md_low_memory_switches_the_allocator_and_runs(tmp_path, checkpoint_file, capsys):
    deck = write_deck(tmp_path, md={"steps": 5}, potential={"preset": None, "model": str(checkpoint_file)})
    try:
        assert main(["md", str(deck), "--no-progress", "--low-memory"]) == 0
        assert allocator_mode() == "low_memory"
        assert "md: 5 steps" in capsys.readouterr().out
    finally:
        configure_allocator()  # back to the CLI's default for the rest of the session
    assert allocator_mode() == "fast"


def test_untrained_potential_is_any_registered_model_with_options_and_says_so(caplog):
    spec = PotentialSpec(preset="small", name="est", options=TINY, seed=3)
    calc = make_calculator(spec, molecule("H2O"))
    assert calc.model.network.name == "est" and calc.model.species == [1, 8]
    assert calc.model.network.config.channels == TINY["channels"]
    (record,) = [r for r in caplog.records if r.name == "mlff.dynamics.runner"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "potential is an UNTRAINED est small network (seed 3); results are not physical"


@pytest.fixture
def checkpoint_file(tmp_path):
    import torch

    from mlff.models.checkpoint import save_checkpoint
    from mlff.models.energy_model import EnergyModel
    from mlff.models.registry import build_network

    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    save_checkpoint(EnergyModel(build_network(preset="small", species=[1, 6, 8])), path, metadata={"note": "card"})
    return path
