"""The ASE calculator against ASE's own numerical derivatives, optimizers and integrators."""

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.constraints import FixAtoms
from ase.md.verlet import VelocityVerlet

import mlff
from mlff.calculator import MLFFCalculator
from mlff.compat import thermalize_momenta
from mlff.errors import MLFFError, StructureError
from mlff.models.checkpoint import CheckpointError, FORMAT_VERSION, save_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.testing.structures import co_on_cu111

E0 = {1: -13.6, 6: -1029.5, 8: -2041.3, 29: -1.7}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    network = build_network(preset="small", species=[1, 6, 8, 29], cutoff=4.5, num_layers=1, channels=16,
                            attn_hidden=16, ffn_hidden=16, edge_channels=16, num_basis=16)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(EnergyModel(network, e0=E0, scale=5.0), path, metadata={"note": "untrained"})
    return path


def co_on_cu():
    slab = co_on_cu111()
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    return slab


def test_forces_match_ase_numerical_forces(checkpoint):
    calc = MLFFCalculator(checkpoint, dtype="float64")
    for atoms in (molecule("CH3CH2OH"), co_on_cu()):
        atoms.rattle(0.05, seed=2)
        atoms.calc = calc
        numeric = calculate_numerical_forces(atoms, eps=1e-4)
        np.testing.assert_allclose(atoms.get_forces(apply_constraint=False), numeric, atol=1e-6)


def test_stress_matches_ase_numerical_stress(checkpoint):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = MLFFCalculator(checkpoint, dtype="float64")
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    stress = atoms.get_stress()
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, numeric, atol=1e-7)


def test_stress_on_non_periodic_structures_is_refused(checkpoint):
    for atoms in (molecule("H2O"), co_on_cu()):
        atoms.calc = MLFFCalculator(checkpoint)
        with pytest.raises(PropertyNotImplementedError, match="periodic in x, y and z"):
            atoms.get_stress()


@pytest.mark.parametrize("neighbor_backend", ["auto", "torch"])
def test_verlet_skin_reuse_equals_rebuild_over_md(checkpoint, neighbor_backend):
    """Skin reuse changes nothing, nor does the torch cell list (what a GPU uses) in place of matscipy."""
    atoms = co_on_cu()
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    reused = MLFFCalculator(checkpoint, dtype="float64", skin=0.5, neighbor_backend=neighbor_backend)
    fresh = MLFFCalculator(checkpoint, dtype="float64", skin=0.0)
    atoms.calc = reused
    dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
    for _ in range(25):
        dyn.run(1)
        probe = atoms.copy()
        probe.calc = fresh
        assert atoms.get_potential_energy() == probe.get_potential_energy()
        assert np.array_equal(atoms.get_forces(), probe.get_forces())
    assert fresh.neighbors.builds == 25 and reused.neighbors.builds < 25 / 2


def test_batch_equals_one_by_one(checkpoint):
    calc = MLFFCalculator(checkpoint, dtype="float64")
    structures = [molecule("CH3CH2OH"), co_on_cu(), bulk("Cu", "fcc", a=3.6) * (2, 2, 2)]
    results = calc.batch(structures)
    for atoms, res in zip(structures, results):
        atoms.calc = MLFFCalculator(checkpoint, dtype="float64")
        assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(res["forces"], atoms.get_forces(apply_constraint=False), atol=1e-10)
        np.testing.assert_allclose(res["energies"].sum(), res["energy"], atol=1e-8)


def test_nve_conserves_energy_in_float64():
    atoms = molecule("CH3CH2OH")  # a trained potential: an untrained one has no repulsion to keep atoms apart
    atoms.calc = MLFFCalculator("ethanol-xtb", dtype="float64")
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(1))
    dyn = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dyn.run(200)
    drift = np.ptp(energies) / len(atoms)
    assert drift < 1e-4, f"total energy varied by {drift:.2e} eV/atom over 50 fs"


def test_mlff_load_and_model_object(checkpoint):
    model = mlff.load(checkpoint)
    assert model.metadata == {"note": "untrained"}
    atoms = molecule("H2O")
    atoms.calc = mlff.MLFFCalculator(model)
    assert np.isfinite(atoms.get_potential_energy())


def test_unknown_element_is_named(checkpoint):
    atoms = Atoms("FeO", positions=[[0, 0, 0], [1.7, 0, 0]])
    atoms.calc = MLFFCalculator(checkpoint)
    with pytest.raises(StructureError, match=r"Fe \(Z=26\)"):
        atoms.get_potential_energy()


def test_checkpoint_errors(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        MLFFCalculator(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        MLFFCalculator(truncated)
    old = torch.load(checkpoint, weights_only=True)
    old["format_version"] = FORMAT_VERSION + 1
    torch.save(old, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        MLFFCalculator(tmp_path / "future.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an mlff checkpoint"):
        MLFFCalculator(tmp_path / "foreign.pt")


def test_interrupted_save_keeps_the_old_checkpoint(checkpoint, tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    target.write_bytes(checkpoint.read_bytes())
    model = mlff.load(checkpoint)

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, target)
    assert target.read_bytes() == checkpoint.read_bytes()
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error(checkpoint):
    with pytest.raises(MLFFError, match="CUDA is not available"):
        MLFFCalculator(checkpoint, device="cuda")


def test_nan_positions_are_refused(checkpoint):
    atoms = molecule("H2O")
    atoms.calc = MLFFCalculator(checkpoint)
    atoms.positions[0, 0] = np.nan
    with pytest.raises(MLFFError, match="NaN"):
        atoms.get_potential_energy()


def test_ase_conventions_calculation_required_reset_and_cell_filter(checkpoint):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)
    calc = MLFFCalculator(checkpoint, dtype="float64")
    atoms.calc = calc
    atoms.get_potential_energy()
    assert not calc.calculation_required(atoms, ["energy", "forces"])
    assert calc.calculation_required(atoms, ["stress"])
    atoms.positions[0, 0] += 0.01
    assert calc.calculation_required(atoms, ["energy"])
    calc.reset()
    assert calc.results == {} and calc.neighbors.builds == 0
    volume = atoms.get_volume()
    stress0 = np.abs(atoms.get_stress()).max()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=0.01, steps=5)
    assert atoms.get_volume() != volume and np.abs(atoms.get_stress()).max() < stress0


def test_shipped_potential_by_name(checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "potentials" / "toy-potential"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv("MLFF_POTENTIALS", str(tmp_path / "potentials"))
    atoms = molecule("H2O")
    atoms.calc = MLFFCalculator("toy-potential")
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(CheckpointError, match="does not exist"):
        MLFFCalculator("no-such-potential")


@pytest.mark.parametrize("options, message", [
    ({"dtype": "float16"}, "dtype 'float16' is not supported; use 'float32' or 'float64'"),
    ({"dtype": torch.bfloat16}, "dtype torch.bfloat16 is not supported"),
    ({"device": "tpu"}, "device 'tpu' is not one of 'auto', 'cpu', 'cuda', 'cuda:N'"),
    ({"device": "meta"}, "device 'meta' is not supported"),
    ({"skin": -0.1}, "skin must be >= 0"),
    ({"kernels": "cuda"}, "kernel backend 'cuda' is not one of torch, triton, auto"),
    ({"kernels": "triton"}, "kernel backend 'triton' is not available on cpu"),
    ({"compile": "yes"}, "compile must be true or false, got 'yes'"),
    ({"neighbor_backend": "vesin"}, "neighbor_backend must be 'auto', 'matscipy' or 'torch', got 'vesin'"),
])
def test_bad_options_are_one_line_errors_naming_the_allowed_values(checkpoint, options, message, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # without the interpreter Triton cannot run on the CPU
    with pytest.raises(MLFFError) as error:
        MLFFCalculator(checkpoint, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_kernel_environment_is_named(checkpoint, monkeypatch):
    monkeypatch.setenv("MLFF_KERNELS", "fast")
    with pytest.raises(MLFFError, match="MLFF_KERNELS='fast' is not one of torch, triton, auto"):
        MLFFCalculator(checkpoint)


def test_shipped_name_typo_lists_the_shipped_potentials(checkpoint):
    with pytest.raises(CheckpointError, match=r"not the name of a shipped potential \(.*ethanol-xtb"):
        MLFFCalculator("ethanol-xbt")


def test_structures_are_validated_before_the_neighbour_list(checkpoint, monkeypatch):
    """Bad structures fail with a StructureError naming the problem, before any neighbour search."""
    import mlff.data.verlet

    calls = []
    real = mlff.data.verlet.neighbor_list
    monkeypatch.setattr(mlff.data.verlet, "neighbor_list", lambda *a, **k: calls.append(1) or real(*a, **k))
    calc = MLFFCalculator(checkpoint)
    cases = [
        (Atoms("FeO", positions=[[0, 0, 0], [1.7, 0, 0]]), r"Fe \(Z=26\) is not among the model's species"),
        (Atoms("OO", positions=[[0, 0, 0], [0.05, 0, 0]]), "overlapping atoms"),
        (Atoms("Cu", cell=[[2, 0, 0], [4, 0, 0], [0, 0, 2]], pbc=True), "singular cell"),
        (Atoms(), "empty structure"),
    ]
    for atoms, message in cases:
        atoms.calc = calc
        with pytest.raises(StructureError, match=message):
            atoms.get_potential_energy()
        with pytest.raises(StructureError, match=f"structure 1: .*{message}"):
            calc.batch([molecule("H2O"), atoms])
    assert not calls


def test_energy_only_under_no_grad_builds_no_graph(checkpoint):
    model = mlff.load(checkpoint, device="cpu", dtype="float64")
    from mlff.data import AtomicGraph

    graph = AtomicGraph.from_atoms(molecule("CH3CH2OH"), model.cutoff, dtype=torch.float64)
    seen = []
    model.network.register_forward_hook(lambda module, args, out: seen.append(out.requires_grad))
    with torch.no_grad():
        model(graph, forces=False)
        assert seen and not any(seen)  # no autograd graph recorded inside the network
        forces = model(graph, forces=True)["forces"]  # forces switch gradients on where needed
    assert forces.abs().max() > 0 and seen[-1] is True
