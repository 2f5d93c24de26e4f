"""Property-based tests (hypothesis) of the whole evaluation path on random structures.

Structures: random cells (skewed; tiny, smaller than the cutoff so that atoms see their own
images; mixed periodicity such as (True, False, True), with the open cell vectors zero, arbitrary
or parallel to a periodic one; fully open), random species from the model's, and random positions
(unwrapped along periodic directions) with no two atoms, images included, closer than 0.7 Å.
Checked on each: nothing crashes, energy, per-atom energies, forces and stress are finite, forces
are -dE/dr and (fully periodic cells) stress is (1/V) dE/d(strain), by 5-point finite differences,
and the ASE calculator agrees with the model. Broken structures (NaN or infinite positions or cell,
singular periodic cell, atoms within 0.1 Å) must raise :class:`mlff.errors.StructureError` and
nothing else, whether they reach the package through ``AtomicGraph.from_atoms`` or through
:class:`mlff.calculator.MLFFCalculator` (fresh, or reusing a neighbour list from a good structure).

Tolerances (float64 throughout, eps = 2.2e-16). The 5-point stencil's truncation error is
h^4/30 |E^(5)|; with h = 1e-4 Å and the model's shortest length scale (Gaussian basis width
cutoff/num_basis ~ 0.4 Å; atoms >= 0.7 Å apart) that is ~1e-16 relative: nothing. What limits the
comparison is round-off in each energy. The float64 total carries the reference energies (sum of
E0, up to ~1e4 eV here), so its last addition alone rounds by up to eps/2 |E|, and the network's
per-atom energies add their own; we bound one evaluation's error by
dE = 16 eps (|sum E0| + sum_i |e_i - E0_i| + 1 eV). The stencil (8, -8, -1, 1)/12h turns it into
1.5 dE/h on the derivative (5e-7 eV/Å with five O atoms; divided by V for stress). Each compared
component must agree to RTOL |F| + 1.5 dE/h, RTOL = 1e-7: autograd itself is exact to ~1e-14
relative, and 1e-7 covers a pair sitting within 2h of the cutoff, where the envelope is only
finitely smooth. Measured over every example: the largest difference is 1/40 of its tolerance,
while a flipped sign fails by six orders of magnitude and a 1e-3 relative force error by 100x.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.neighborlist import neighbor_list as ase_neighbor_list
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlff.calculator import MLFFCalculator
from mlff.data import AtomicGraph
from mlff.errors import StructureError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network

SPECIES = [1, 6, 8, 29]
E0 = {1: -13.6, 6: -1029.5, 8: -2041.3, 29: -1.7}
CUTOFF = 3.0
MIN_DISTANCE = 0.7  # Å: generated structures keep atoms (and images) at least this far apart
OPEN_BOX = 4.0  # Å: extent of the atoms along open directions (some end up beyond the cutoff)
H = 1e-4  # Å (or strain): finite-difference step
RTOL = 1e-7
EPS = np.finfo(np.float64).eps
KINDS = ("skewed", "tiny", "mixed", "open")
MIXED_PBC = [p for p in itertools.product([False, True], repeat=3) if any(p) and not all(p)]

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these graphs are tiny, and on a busy 2-core machine two threads per
    process made each evaluation 2-8x slower (measured while writing this file)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    """A small float64 EquiformerV2 with every parameter randomly perturbed (none left at 0 or 1)."""
    torch.manual_seed(0)
    network = build_network("equiformer_v2", species=SPECIES, cutoff=CUTOFF, num_layers=1, channels=8, lmax=2,
                            mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8,
                            edge_channels=8, num_basis=8, ffn_activation="gate", norm="rms_norm_sh")
    with torch.no_grad():
        for p in network.parameters():
            # scale of the perturbation: the parameter's spread, else its size (norm weights = 1),
            # else 0.1 (zero-initialised biases), so that every one moves
            spread = float(p.std()) if p.numel() > 1 else 0.0
            size = spread or float(p.abs().mean()) or 0.1
            p.add_(0.3 * size * torch.randn_like(p))
    return EnergyModel(network, e0=E0, scale=1.3).double().eval()


# ---------------------------------------------------------------------- structures
def _rotation(q) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def min_distance(atoms: Atoms, limit: float) -> float:
    """Shortest distance between two atoms or an atom and an image (periodic directions only),
    if below ``limit``; else ``limit``. Uses ASE's neighbour list (independent of mlff's), on a copy
    whose open cell vectors are zeroed (ASE completes them), so any open vector is accepted."""
    probe = atoms.copy()
    cell = probe.cell.array.copy()
    cell[~probe.pbc] = 0.0
    probe.set_cell(cell, scale_atoms=False)
    d = ase_neighbor_list("d", probe, limit, self_interaction=False)
    return float(d.min()) if len(d) else limit


@st.composite
def structures(draw, kinds=KINDS, max_atoms=5):
    """(atoms, kind): a valid structure of one of ``kinds``, atoms >= MIN_DISTANCE apart."""
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(1, min(3, max_atoms) if kind == "tiny" else max_atoms))
    numbers = draw(st.lists(st.sampled_from(SPECIES), min_size=n, max_size=n))
    pbc = {"skewed": (True,) * 3, "tiny": (True,) * 3, "open": (False,) * 3}.get(kind)
    if pbc is None:
        pbc = draw(st.sampled_from(MIXED_PBC))
    pbc = np.array(pbc)
    # rows = lengths * (e_k + shear); |shear entries| <= 0.45 keeps the matrix diagonally dominant,
    # hence invertible, while skewing the cell by up to ~35 degrees. Tiny rows are < 2.97 Å < cutoff.
    low, high = (1.0, 2.5) if kind == "tiny" else (2.0, 7.0)
    lengths = np.array(draw(st.lists(st.floats(low, high), min_size=3, max_size=3)))
    shear = np.array(draw(st.lists(st.floats(-0.45, 0.45), min_size=9, max_size=9))).reshape(3, 3)
    np.fill_diagonal(shear, 0.0)
    q = draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4))
    assume(np.linalg.norm(q) > 0.2)
    cell = lengths[:, None] * (np.eye(3) + shear) @ _rotation(q).T
    # positions: fractional along periodic vectors (unwrapped, in [-0.5, 1.5)), plus Cartesian
    # offsets in [0, OPEN_BOX) along an orthonormal complement of the periodic vectors
    frame = cell.copy()
    if not pbc.all():
        basis, _ = np.linalg.qr(np.concatenate([cell[pbc].T, np.eye(3)], axis=1))
        frame[~pbc] = OPEN_BOX * basis[:, pbc.sum():3].T
    frac = np.array(draw(st.lists(st.floats(-0.5, 1.5), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    frac[:, ~pbc] = (frac[:, ~pbc] + 0.5) / 2
    positions = frac @ frame
    # the cell vectors along open directions are ignored by the package: zero, arbitrary, or
    # parallel to a periodic one (the full 3x3 cell is then singular)
    for k in np.flatnonzero(~pbc):
        choice = draw(st.sampled_from(["zero", "arbitrary", "parallel"] if pbc.any() else ["zero", "arbitrary"]))
        if choice == "zero":
            cell[k] = 0.0
        elif choice == "parallel":
            cell[k] = draw(st.floats(0.5, 2.0)) * cell[draw(st.sampled_from(list(np.flatnonzero(pbc))))]
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    assume(min_distance(atoms, MIN_DISTANCE) >= MIN_DISTANCE)
    return atoms, kind


# ---------------------------------------------------------------------- evaluation
def reference(atoms: Atoms) -> float:
    return sum(E0[int(z)] for z in atoms.numbers)


def evaluate(model, atoms: Atoms, stress: bool) -> dict:
    graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=torch.float64)
    out = model(graph, forces=True, stress=stress)
    return {"graph": graph, **{k: v.numpy() for k, v in out.items()}}


def energy(model, atoms: Atoms, positions=None, cell=None) -> float:
    """Energy at displaced positions and/or a strained cell (fresh neighbour list, no validation)."""
    moved = atoms.copy()
    if cell is not None:
        moved.set_cell(cell, scale_atoms=False)
    if positions is not None:
        moved.positions = positions
    graph = AtomicGraph.from_atoms(moved, model.cutoff, dtype=torch.float64, labels=False, validate=False)
    return float(model(graph, forces=False)["energy"][0])


def five_point(f, h: float = H) -> float:
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def roundoff(atoms: Atoms, energies: np.ndarray) -> float:
    """Bound on the round-off of one energy evaluation (see the module docstring), eV."""
    network = np.abs(energies - np.array([E0[int(z)] for z in atoms.numbers])).sum()
    return 16 * EPS * (abs(reference(atoms)) + network + 1.0)


# ---------------------------------------------------------------------- properties of valid structures
def test_model_is_perturbed_and_not_trivial(model):
    """Every parameter moved away from its initial value, and a tiny skewed cell gets non-zero
    forces and stress (so the properties below are not vacuous)."""
    torch.manual_seed(0)
    fresh = EnergyModel(build_network("equiformer_v2", **{k: v for k, v in vars(model.network.config).items()}))
    same = [name for (name, p), q in zip(model.network.named_parameters(), fresh.network.parameters())
            if torch.equal(p.double(), q.double())]
    assert not same, f"parameters left at their initial values: {same[:5]}"
    atoms = Atoms("CuOH", positions=[[0, 0, 0], [1.2, 0.3, 0.1], [0.2, 1.0, 0.4]],
                  cell=[[2.0, 0, 0], [0.5, 1.9, 0], [0.3, 0.2, 2.1]], pbc=True)
    out = evaluate(model, atoms, stress=True)
    assert np.abs(out["forces"]).max() > 1e-3 and np.abs(out["stress"]).max() > 1e-5


@PROPERTY
@given(case=structures(), data=st.data())
def test_energy_forces_finite_and_forces_are_minus_energy_gradient(model, case, data):
    atoms, kind = case
    periodic = bool(atoms.pbc.all())
    out = evaluate(model, atoms, stress=periodic)
    graph = out["graph"]
    if kind == "tiny":  # the point of tiny cells: every atom sees its own images
        self_edges = (graph.edge_index[0] == graph.edge_index[1]).sum()
        assert self_edges >= len(atoms), "a tiny cell produced no self-image edges"
    for key in ("energy", "energies", "forces") + (("stress",) if periodic else ()):
        assert np.isfinite(out[key]).all(), f"{key} is not finite: {out[key]}"
    bound = roundoff(atoms, out["energies"])
    assert abs(out["energies"].sum() - out["energy"][0]) <= bound, "per-atom energies do not add up"
    # a few randomly chosen force components against 5-point finite differences
    tolerance_floor = 1.5 * bound / H
    for _ in range(2):
        i = data.draw(st.integers(0, len(atoms) - 1), label="atom")
        k = data.draw(st.integers(0, 2), label="axis")

        def e(step):
            moved = atoms.positions.copy()
            moved[i, k] += step
            return energy(model, atoms, positions=moved)

        numeric = -five_point(e)
        analytic = out["forces"][i, k]
        tol = RTOL * max(abs(analytic), abs(numeric)) + tolerance_floor
        assert abs(analytic - numeric) <= tol, (
            f"F[{i},{k}] autograd {analytic:.12g} vs finite difference {numeric:.12g} "
            f"(difference {abs(analytic - numeric):.2e} > tolerance {tol:.2e})")
    # the ASE calculator (Verlet-skin neighbour list) gives the same numbers
    atoms = atoms.copy()
    atoms.calc = MLFFCalculator(model, device="cpu")
    assert abs(atoms.get_potential_energy() - out["energy"][0]) <= bound
    np.testing.assert_allclose(atoms.get_forces(), out["forces"], rtol=0, atol=tolerance_floor * H)
    if periodic:
        np.testing.assert_allclose(atoms.get_stress(voigt=False), out["stress"][0], rtol=0,
                                   atol=tolerance_floor * H / atoms.get_volume())
    else:
        assert np.isnan(evaluate(model, atoms, stress=True)["stress"]).all()  # stress: periodic cells only
        with pytest.raises(PropertyNotImplementedError):
            atoms.get_stress()


@settings(PROPERTY, max_examples=50)
@given(case=structures(kinds=("skewed", "tiny")), data=st.data())
def test_stress_is_strain_derivative(model, case, data):
    atoms, _ = case
    out = evaluate(model, atoms, stress=True)
    stress = out["stress"][0]
    volume = atoms.get_volume()
    assert np.isfinite(stress).all()
    np.testing.assert_allclose(stress, stress.T, rtol=0, atol=1e-12 * max(1.0, np.abs(stress).max()))
    floor = 1.5 * roundoff(atoms, out["energies"]) / H / volume
    for _ in range(2):
        a = data.draw(st.integers(0, 2), label="row")
        b = data.draw(st.integers(0, 2), label="column")

        def e(step):
            strain = np.zeros((3, 3))
            strain[a, b] += step / 2
            strain[b, a] += step / 2
            deform = np.eye(3) + strain
            return energy(model, atoms, atoms.positions @ deform, atoms.cell.array @ deform)

        numeric = five_point(e) / volume
        tol = RTOL * max(abs(stress[a, b]), abs(numeric)) + floor
        assert abs(stress[a, b] - numeric) <= tol, (
            f"stress[{a},{b}] autograd {stress[a, b]:.12g} vs finite difference {numeric:.12g} "
            f"(difference {abs(stress[a, b] - numeric):.2e} > tolerance {tol:.2e})")


# ---------------------------------------------------------------------- structures that must be refused
def corrupt(atoms: Atoms, kind: str, data) -> Atoms:
    """A broken copy of ``atoms``: the package must refuse it with a StructureError."""
    bad = atoms.copy()
    if kind == "nonfinite_positions":
        i = data.draw(st.integers(0, len(bad) - 1), label="atom")
        k = data.draw(st.integers(0, 2), label="axis")
        positions = bad.positions.copy()
        positions[i, k] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
        bad.positions = positions
    elif kind == "nonfinite_cell":
        k = data.draw(st.sampled_from(list(np.flatnonzero(bad.pbc))), label="periodic vector")
        cell = bad.cell.array.copy()
        cell[k, data.draw(st.integers(0, 2), label="axis")] = data.draw(st.sampled_from([np.nan, np.inf]))
        bad.set_cell(cell, scale_atoms=False)
    elif kind == "singular_cell":
        periodic = list(np.flatnonzero(bad.pbc))
        k = data.draw(st.sampled_from(periodic), label="periodic vector")
        others = [j for j in periodic if j != k]
        cell = bad.cell.array.copy()
        if others and data.draw(st.booleans(), label="parallel"):
            cell[k] = data.draw(st.sampled_from([-2.0, -1.0, 0.5, 1.0, 3.0])) * cell[data.draw(st.sampled_from(others))]
        else:
            cell[k] = data.draw(st.sampled_from([0.0, 1e-12]))
        bad.set_cell(cell, scale_atoms=False)
    elif kind == "overlap":
        i = data.draw(st.integers(0, len(bad) - 1), label="atom")
        direction = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3), label="direction"))
        assume(np.linalg.norm(direction) > 0.1)
        d = data.draw(st.floats(0.0, 0.09), label="distance")
        if bad.pbc.any() and data.draw(st.booleans(), label="self image"):
            # a periodic vector shorter than 0.1 Å: the atom overlaps its own image
            k = data.draw(st.sampled_from(list(np.flatnonzero(bad.pbc))), label="periodic vector")
            assume(d > 0.02)  # (shorter vectors only multiply the images a neighbour search must list)
            cell = bad.cell.array.copy()
            cell[k] = d * direction / np.linalg.norm(direction)
            bad.set_cell(cell, scale_atoms=False)
        else:
            extra = Atoms(numbers=[data.draw(st.sampled_from(SPECIES), label="species")],
                          positions=[bad.positions[i] + d * direction / np.linalg.norm(direction)])
            bad += extra
    return bad


BAD_KINDS = ("nonfinite_positions", "nonfinite_cell", "singular_cell", "overlap")
PERIODIC_KINDS = ("skewed", "tiny", "mixed")
REFUSE = settings(max_examples=12, deadline=None, derandomize=True, print_blob=True, report_multiple_bugs=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("path, kind", [
    pytest.param(path, kind, id=f"{path}-{kind}")
    for path in ("graph", "calculator", "calculator_after_good_structure") for kind in BAD_KINDS
])
@REFUSE
@given(data=st.data())
def test_broken_structures_raise_structure_error(model, path, kind, data):
    kinds = PERIODIC_KINDS if kind in ("nonfinite_cell", "singular_cell") else KINDS
    atoms, _ = data.draw(structures(kinds=kinds, max_atoms=3), label="structure")
    bad = corrupt(atoms, kind, data)
    with pytest.raises(StructureError):
        if path == "graph":
            AtomicGraph.from_atoms(bad, model.cutoff, dtype=torch.float64)
        else:
            calc = MLFFCalculator(model, device="cpu")
            if path == "calculator_after_good_structure":
                calc.get_potential_energy(atoms)  # the neighbour list now exists, for the good structure
            calc.get_forces(bad)


@settings(REFUSE)
@given(case=structures(max_atoms=3), data=st.data())
def test_calculator_refuses_overlap_reached_within_the_verlet_skin(model, case, data):
    """MD-like: a pair 0.15-0.3 Å apart (legal) closes to < 0.1 Å by moving less than skin/2."""
    atoms, _ = case
    i = data.draw(st.integers(0, len(atoms) - 1), label="atom")
    direction = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3), label="direction"))
    assume(np.linalg.norm(direction) > 0.1)
    direction /= np.linalg.norm(direction)
    start = data.draw(st.floats(0.15, 0.3), label="start distance")
    end = data.draw(st.floats(max(0.0, start - 0.24), 0.09), label="end distance")
    atoms += Atoms(numbers=[data.draw(st.sampled_from(SPECIES))], positions=[atoms.positions[i] + start * direction])
    calc = MLFFCalculator(model, device="cpu", skin=0.5)
    assert np.isfinite(calc.get_forces(atoms)).all()
    closer = atoms.copy()
    closer.positions[-1] = atoms.positions[i] + end * direction
    with pytest.raises(StructureError):
        calc.get_forces(closer)
