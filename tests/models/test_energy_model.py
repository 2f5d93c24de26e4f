"""EnergyModel: reference energies stay float64, the isolated-atom term is cached correctly."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlff.data import AtomicGraph
from mlff.models.checkpoint import load_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network

E0 = {1: -13.6, 6: -1029.5, 8: -2041.31234567891}


def small_model():
    torch.manual_seed(0)
    network = build_network(species=[1, 6, 8], cutoff=4.0, num_layers=1, channels=8, lmax=2, mmax=1, heads=2,
                            attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8, edge_channels=8,
                            num_basis=8, ffn_activation="gate")
    return EnergyModel(network, e0=E0, scale=1.7)


def test_reference_energies_stay_float64_through_dtype_changes():
    model = small_model().float()
    assert model.e0.dtype == torch.float64 and model.scale.dtype == torch.float64
    assert model.e0_dict()[8] == E0[8]  # not rounded to float32 (which moves it by 6e-5 eV)
    model = model.double().float().to(torch.float64)
    assert model.e0_dict() == {z: E0[z] for z in (1, 6, 8)}
    graph = AtomicGraph.from_atoms(Atoms("O"), model.cutoff, dtype=torch.float32)
    # summed in float64: a float32 sum would move it by 6e-5 eV. What is left is the network's float32
    # output for the atom minus its cached isolated-atom output, computed in a batch of all species
    # (BLAS rounds a 1-row and a 3-row product differently: 1.3e-8 eV measured)
    energy = float(model.float().eval()(graph, forces=False)["energy"][0])
    assert energy == pytest.approx(E0[8], rel=0, abs=1e-7)


def test_isolated_atom_cache_follows_the_weights():
    model = small_model().double().eval()
    graph = AtomicGraph.from_atoms(molecule("H2O"), model.cutoff, dtype=torch.float64)
    first = model(graph)["energy"]
    calls = []
    handle = model.network.register_forward_hook(lambda *args: calls.append(1))
    assert torch.equal(model(graph)["energy"], first) and len(calls) == 1  # isolated atoms: cached
    with torch.no_grad():
        model.network.head.out.weight.add_(0.1)  # an in-place update, as an optimizer makes
    changed = model(graph)["energy"]
    assert len(calls) == 3  # the molecule, then the isolated atoms again
    fresh = small_model().double().eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(graph)["energy"], changed) and not torch.equal(changed, first)
    handle.remove()


def test_isolated_atom_cache_follows_a_replaced_layer():
    """Replacing a submodule (new parameter objects) is seen without walking the modules on every call."""
    model = small_model().double().eval()
    graph = AtomicGraph.from_atoms(molecule("H2O"), model.cutoff, dtype=torch.float64)
    first = model(graph)["energy"]
    old = model.network.head.out
    replacement = torch.nn.Linear(old.in_features, old.out_features, bias=old.bias is not None).double()
    with torch.no_grad():
        replacement.weight.copy_(old.weight + 0.1)
    model.network.head.out = replacement
    changed = model(graph)["energy"]
    fresh = small_model().double().eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(graph)["energy"], changed) and not torch.equal(changed, first)


def test_training_differentiates_the_isolated_atom_term():
    model = small_model().double().train()
    graph = AtomicGraph.from_atoms(Atoms("O"), model.cutoff, dtype=torch.float64)
    out = model(graph)  # one isolated atom: its energy is E0 exactly, whatever the weights
    loss = out["energy"].sum()
    loss.backward()
    grads = [p.grad for p in model.network.parameters() if p.grad is not None]
    assert grads and max(float(g.abs().max()) for g in grads) < 1e-12  # eps - eps_iso cancels exactly


def test_version_1_checkpoints_load_with_identical_numbers():
    """The first shipped potentials (kept here as they shipped) are format-version-1 files; the
    migration renames their weights only and keeps their norms. Reference numbers were recorded with
    the code that wrote them. Identical up to round-off: the Wigner-D matrices are now fitted on the
    package's one Fibonacci lattice instead of a second copy of it, which moves the last bits
    (measured: 5e-15 eV/Å)."""
    data = Path(__file__).parent / "data"
    ref = np.load(data / "shipped_v1_reference.npz")
    for name in ("ethanol-xtb", "co-cu111-emt"):
        key = name.replace("-", "_")
        path = data / f"{key}_v1.pt"
        assert torch.load(path, weights_only=True)["format_version"] == 1
        model = load_checkpoint(path, dtype=torch.float64)
        assert (model.network.config.norm, model.network.config.attn_alpha_norm) == ("layer_norm_sh", "layer_norm")
        assert model.network.repulsion is None  # files without the key had none
        atoms = Atoms(ref[f"{key}_numbers"], ref[f"{key}_positions"], cell=ref[f"{key}_cell"], pbc=ref[f"{key}_pbc"])
        out = model(AtomicGraph.from_atoms(atoms, model.cutoff, dtype=torch.float64))
        assert abs(float(out["energy"][0]) - float(ref[f"{key}_energy"][0])) < 1e-11
        np.testing.assert_allclose(out["forces"].numpy(), ref[f"{key}_forces"], rtol=0, atol=1e-12)


def test_version_2_checkpoints_keep_the_attention_layer_norm(tmp_path):
    """Version 3 names the attention-logit norm; a version-2 file (which has no such key) must rebuild the
    LayerNorm it was trained with, whatever the default, and give the same numbers."""
    from mlff.models.checkpoint import read_checkpoint, save_checkpoint

    torch.manual_seed(0)
    network = build_network(species=[1, 6, 8], cutoff=4.0, num_layers=1, channels=8, lmax=2, mmax=1, heads=2,
                            attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8, edge_channels=8,
                            num_basis=8, ffn_activation="gate", attn_alpha_norm="layer_norm")
    model = EnergyModel(network, e0=E0, scale=1.7).double().eval()
    path = save_checkpoint(model, tmp_path / "v3.pt")
    old = torch.load(path, weights_only=True)
    del old["model"]["config"]["attn_alpha_norm"]
    old["format_version"] = 2
    torch.save(old, tmp_path / "v2.pt")
    assert read_checkpoint(tmp_path / "v2.pt")["model"]["config"]["attn_alpha_norm"] == "layer_norm"
    loaded = load_checkpoint(tmp_path / "v2.pt", dtype=torch.float64)
    graph = AtomicGraph.from_atoms(molecule("CH3CH2OH"), model.cutoff, dtype=torch.float64)
    torch.testing.assert_close(loaded(graph)["forces"], model(graph)["forces"], rtol=0, atol=1e-14)


def test_the_pair_repulsion_adds_zbl_to_the_energy_outside_the_scale(tmp_path):
    """Same weights with and without the repulsion: the energy differs by the switched ZBL sum over pairs
    (from ASE's neighbour list), per atom half each, not multiplied by the model's scale; the forces by its
    gradient (central differences); a checkpoint keeps it."""
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    from mlff.models.checkpoint import save_checkpoint
    from mlff.nn.radial import PolynomialEnvelope
    from mlff.nn.repulsion import zbl_energy

    plain = small_model().double().eval()
    torch.manual_seed(0)
    network = build_network(species=[1, 6, 8], cutoff=4.0, num_layers=1, channels=8, lmax=2, mmax=1, heads=2,
                            attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8, edge_channels=8,
                            num_basis=8, ffn_activation="gate", repulsion=0.6)
    walled = EnergyModel(network, e0=E0, scale=1.7).double().eval()
    atoms = Atoms("COH", [[0, 0, 0], [0.55, 0.1, 0], [-0.5, 0.3, 0.1]])  # C-O and C-H inside 0.6 x radii

    def pair_energy(atoms):
        i, j, d = neighbor_list("ijd", atoms, 2.0)
        z = atoms.numbers
        inner = 0.6 * (covalent_radii[z[i]] + covalent_radii[z[j]])
        v = zbl_energy(torch.tensor(z[i]), torch.tensor(z[j]), torch.tensor(d)) * PolynomialEnvelope(1.0)(
            torch.tensor(d / inner))
        return 0.5 * float(v.sum()), i

    def evaluate(model, atoms):
        return model(AtomicGraph.from_atoms(atoms, model.cutoff, dtype=torch.float64))

    expected, i = pair_energy(atoms)
    assert len(set(i.tolist())) == 3 and expected > 50  # every atom has a pair inside, and it repels hard
    difference = float(evaluate(walled, atoms)["energy"][0] - evaluate(plain, atoms)["energy"][0])
    assert difference == pytest.approx(expected, rel=1e-12)
    forces = (evaluate(walled, atoms)["forces"] - evaluate(plain, atoms)["forces"]).numpy()
    h = 1e-5
    for atom in range(3):
        for axis in range(3):
            moved = [atoms.copy(), atoms.copy()]
            moved[0].positions[atom, axis] += h
            moved[1].positions[atom, axis] -= h
            slope = (pair_energy(moved[0])[0] - pair_energy(moved[1])[0]) / (2 * h)
            assert forces[atom, axis] == pytest.approx(-slope, rel=1e-6, abs=1e-6)
    loaded = load_checkpoint(save_checkpoint(walled, tmp_path / "walled.pt"), dtype=torch.float64)
    assert loaded.network.config.repulsion == 0.6
    assert float(evaluate(loaded, atoms)["energy"][0]) == float(evaluate(walled, atoms)["energy"][0])
    assert plain.network.repulsion is None
