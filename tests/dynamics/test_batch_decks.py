"""Decks with a ``structures:`` batch: ``mlff md`` and ``mlff relax`` step every structure together."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import yaml

from mlff.cli import main
from mlff.dynamics.deck import load_deck
from mlff.errors import ConfigError
from mlff.plotting import read_data
from tests.dynamics.decks import TINY, write_deck

POTENTIAL = {"preset": "small", "species": [1, 6, 8, 29], "dtype": "float64", "options": TINY}
BATCH = [{"system": "md17:ethanol", "copies": 2}, {"builder": "bulk", "args": ["Cu", "fcc"], "kwargs": {"a": 3.6, "cubic": True},
                                                   "copies": 1}]


def batch_deck(tmp_path, **sections):
    path = write_deck(tmp_path, potential=POTENTIAL, **sections)
    deck = yaml.safe_load(path.read_text())
    del deck["structure"]
    deck["structures"] = BATCH
    path.write_text(yaml.safe_dump(deck))
    return path


def test_batched_nve_md_writes_one_trajectory_and_log_per_structure(tmp_path, capsys):
    deck = batch_deck(tmp_path, md={"ensemble": "nve", "timestep": 0.5, "steps": 10, "temperature": 300, "seed": 3})
    assert main(["md", str(deck)]) == 0
    out = capsys.readouterr().out
    assert "batched MD nve: 3 structures, 11 model calls" in out
    assert out.count("drift") == 3
    frames = [ase.io.read(tmp_path / f"traj.{k}.xyz", ":") for k in range(3)]
    assert [len(f) for f in frames] == [3, 3, 3]  # steps 0, 5, 10
    assert len(frames[0][0]) == 9 and len(frames[2][0]) == 4
    # the two ethanol copies got different velocities (their own streams), so they moved apart
    assert not np.allclose(frames[0][-1].positions, frames[1][-1].positions)
    log = (tmp_path / "run.1.log").read_text().splitlines()
    assert log[0].split() == ["Time[ps]", "Etot[eV]", "Epot[eV]", "Ekin[eV]", "T[K]"] and len(log) == 4
    # one figure per structure: its NVE panel is that structure's E_tot - E_tot(0) with its printed drift
    drift = float(out.split("structure 1 (")[1].split("drift ")[1].split()[0])
    data = read_data(tmp_path / "run.1.png")
    assert data["drift_mev_atom_ps"] == pytest.approx(drift, abs=1e-4)
    assert data["total_minus_initial_mev_atom"][0] == 0 and len(data["time_ps"]) == 11
    etot = [float(line.split()[1]) for line in log[1:]]  # steps 0, 5, 10 at log precision
    np.testing.assert_allclose(np.asarray(data["total_minus_initial_mev_atom"])[[0, 5, 10]],
                               1000 * (np.asarray(etot) - etot[0]) / 9, atol=2e-3)
    assert data["caption"] == f"mlff md {deck} · potential untrained equiformer_v2 small · structure 1 of 3"


def test_batched_relax_converges_each_structure(tmp_path, capsys):
    deck = batch_deck(tmp_path, relax={"optimizer": "FIRE", "fmax": 0.1, "steps": 200})
    assert main(["relax", str(deck)]) == 0
    out = capsys.readouterr().out
    assert out.count("converged in") == 3 and "NOT converged" not in out
    for k in range(3):
        data = read_data(tmp_path / f"run.{k}.png")
        steps = int(out.split(f"structure {k} (")[1].split("converged in ")[1].split()[0])
        assert data["step"] == list(range(steps + 1)) and data["fmax_threshold"] == 0.1
        assert data["fmax_eV_A"][-1] < 0.1 and all(f >= 0.1 for f in data["fmax_eV_A"][:-1])
        assert data["energy_minus_initial_meV"][0] == 0
        assert steps == 0 or data["energy_minus_initial_meV"][-1] < 0  # the cubic Cu cell starts converged


@pytest.mark.parametrize("sections, message", [
    ({"md": {"ensemble": "npt", "steps": 5}}, "md.ensemble 'npt': a batch ('structures') runs nve or langevin"),
    ({"relax": {"optimizer": "BFGS"}}, "relax: a batch ('structures') relaxes positions with FIRE only"),
])
def test_what_a_batch_cannot_run_is_named(tmp_path, sections, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_deck(batch_deck(tmp_path, **sections))


def test_structure_and_structures_together_are_refused(tmp_path):
    path = batch_deck(tmp_path, md={"steps": 5})
    deck = yaml.safe_load(path.read_text())
    deck["structure"] = {"system": "md17:ethanol"}
    path.write_text(yaml.safe_dump(deck))
    with pytest.raises(ConfigError, match="either 'structure' or 'structures'"):
        load_deck(path)
