"""Physical checks of an energy model, each a plain function that measures and raises on failure.

Every check takes an :class:`~mlff.models.energy_model.EnergyModel` (on any device, usually float64)
and returns what it measured; a failure raises :class:`ModelCheckError` (an ``AssertionError``)
that says what was measured against which bound. :mod:`mlff.testing.suite` runs them under pytest,
and :func:`mlff.testing.check_model` runs them all in one call.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from mlff.data import AtomicGraph
from mlff.errors import StructureError
from mlff.so3.rotation import random_rotation
from mlff.testing.structures import ethanol, slab_with_co


class ModelCheckError(AssertionError):
    """A model failed a physical check; the message says what was measured against which bound."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelCheckError(message)


def evaluate(model, atoms, stress: bool = False, dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """The model's outputs for ``atoms`` as float64 numpy arrays (graph built in ``dtype``)."""
    device, dtype = _placement(model, dtype)
    graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=dtype, device=device)
    out = model(graph, forces=True, stress=stress)
    return {k: v.detach().double().cpu().numpy() for k, v in out.items()}


def energy_at(model, atoms, positions=None, cell=None) -> float:
    """Energy of ``atoms`` (optionally moved/strained) minus its reference energies, float64."""
    atoms = atoms.copy()
    if cell is not None:
        atoms.set_cell(cell, scale_atoms=False)
    if positions is not None:
        atoms.positions = positions
    device, dtype = _placement(model, None)
    graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=dtype, device=device)
    # the constant reference energies are removed: they only add round-off to differences
    reference = float(model.e0[torch.as_tensor(atoms.numbers, device=model.e0.device)].sum())
    return float(model(graph, forces=False)["energy"][0]) - reference


def _placement(model, dtype):
    parameter = next(model.parameters())
    return parameter.device, dtype or parameter.dtype


def five_point_derivative(f, h: float = 1e-4) -> float:
    """Central difference with Richardson extrapolation: error O(h^4) instead of O(h^2).

    With plain central differences the truncation error alone reached 1e-6 relative on untrained
    models (measured), which would hide the quantity the checks are about.
    """
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    turned.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return turned


# ---------------------------------------------------------------------- derivatives
def check_forces(model, atoms: Atoms, rtol: float = 1e-6) -> float:
    """Forces equal −dE/dr by 5-point finite differences of every coordinate (float64)."""
    forces = evaluate(model, atoms)["forces"]
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            def energy(step, i=i, k=k):
                moved = atoms.positions.copy()
                moved[i, k] += step
                return energy_at(model, atoms, moved)

            numeric[i, k] = -five_point_derivative(energy)
    _require(np.abs(forces).max() > 1e-3, "forces are trivially zero")
    error = np.abs(forces - numeric).max() / np.abs(numeric).max()
    _require(error <= rtol, f"relative force error {error:.2e} (bound {rtol:g})")
    return float(error)


def check_stress(model, rtol: float = 1e-6) -> float:
    """Stress equals (1/V) dE/d(strain) by finite differences, and is symmetric (float64)."""
    atoms = slab_with_co()
    atoms.pbc = True  # fully periodic so that every strain component is meaningful
    stress = evaluate(model, atoms, stress=True)["stress"][0]
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            def energy(step, a=a, b=b):
                eps = np.zeros((3, 3))
                eps[a, b] += step / 2
                eps[b, a] += step / 2
                deform = np.eye(3) + eps
                return energy_at(model, atoms, atoms.positions @ deform, atoms.cell.array @ deform)

            numeric[a, b] = five_point_derivative(energy) / atoms.get_volume()
    _require(np.abs(numeric).max() > 1e-5, "stress is trivially zero")
    error = np.abs(stress - numeric).max() / np.abs(numeric).max()
    _require(error <= rtol, f"relative stress error {error:.2e} (bound {rtol:g})")
    _require(np.abs(stress - stress.T).max() <= 1e-12 * max(1.0, np.abs(stress).max()), "stress is not symmetric")
    return float(error)


def check_second_derivatives(model) -> int:
    """A loss on the forces (create_graph) back-propagates into every parameter."""
    graph = AtomicGraph.from_atoms(ethanol(), model.cutoff, dtype=_placement(model, None)[1],
                                   device=_placement(model, None)[0])
    was_training = model.training
    model.train()
    try:
        out = model(graph, forces=True)
        out["forces"].pow(2).sum().backward()
    finally:
        model.train(was_training)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    model.zero_grad(set_to_none=True)
    _require(out["forces"].requires_grad, "training forces are detached from the parameters")
    _require(not missing, f"no gradient of a force loss reaches {missing[:5]}")
    return sum(1 for _ in model.parameters())


# ---------------------------------------------------------------------- symmetry
def check_rotation(model, seed: int, energy_rtol: float, force_atol: float,
                   dtype: torch.dtype | None = None) -> tuple[float, float]:
    """Energy invariant and forces equivariant under a random rotation (molecule and slab)."""
    worst = (0.0, 0.0)
    rotation = random_rotation(seed)
    for atoms in (ethanol(seed), slab_with_co(seed)):
        ref = evaluate(model, atoms, dtype=dtype)
        out = evaluate(model, rotated(atoms, rotation), dtype=dtype)
        e_err = abs(out["energy"][0] - ref["energy"][0]) / abs(ref["energy"][0])
        f_err = np.abs(out["forces"] - ref["forces"] @ rotation.T).max()
        _require(e_err <= energy_rtol, f"energy changed by {e_err:.2e} (relative; bound {energy_rtol:g})")
        _require(f_err <= force_atol, f"forces not rotated: {f_err:.2e} eV/Å (bound {force_atol:g})")
        worst = (max(worst[0], e_err), max(worst[1], f_err))
    return worst


def check_translation_permutation_images(model, energy_atol: float = 1e-9, force_atol: float = 1e-10,
                                         dtype: torch.dtype | None = None) -> None:
    """Translating, permuting, or moving an atom by a lattice vector changes nothing."""
    atoms = slab_with_co()
    ref = evaluate(model, atoms, dtype=dtype)
    moved = atoms.copy()
    moved.positions += np.array([0.37, -1.3, 0.8])
    perm = np.random.default_rng(0).permutation(len(atoms))
    imaged = atoms.copy()
    imaged.positions[3] += atoms.cell[0] - 2 * atoms.cell[1]
    for name, other, index in (("translation", moved, slice(None)), ("permutation", atoms[perm], perm),
                               ("lattice shift", imaged, slice(None))):
        out = evaluate(model, other, dtype=dtype)
        e_err = abs(out["energy"][0] - ref["energy"][0])
        f_err = np.abs(out["forces"] - ref["forces"][index]).max()
        _require(e_err <= energy_atol, f"{name} changed the energy by {e_err:.2e} eV (bound {energy_atol:g})")
        _require(f_err <= force_atol, f"{name} changed the forces by {f_err:.2e} eV/Å (bound {force_atol:g})")


def check_extensive(model) -> None:
    """A 2x2x2 supercell has 8 times the energy; wrapped and unwrapped positions agree (float64)."""
    atoms = slab_with_co()
    atoms.pbc = True
    e1 = evaluate(model, atoms)["energy"][0]
    e8 = evaluate(model, atoms * (2, 2, 2))["energy"][0]
    _require(abs(e8 - 8 * e1) <= 1e-10 * abs(e8), f"supercell energy {e8} != 8 x {e1}")
    unwrapped = atoms.copy()
    unwrapped.positions += 2.3 * atoms.cell[0] + 0.7 * atoms.cell[2]
    wrapped = unwrapped.copy()
    wrapped.wrap()
    a, b = evaluate(model, unwrapped), evaluate(model, wrapped)
    _require(abs(a["energy"][0] - b["energy"][0]) < 1e-9, "wrapping the positions changed the energy")
    _require(np.abs(a["forces"] - b["forces"]).max() < 1e-10, "wrapping the positions changed the forces")


# ---------------------------------------------------------------------- smoothness
PULL_DISTANCE = 4.2  # Å: far enough to cross at least three neighbours' cutoff spheres


def _pull_direction(atoms: Atoms) -> np.ndarray:
    """Straight away from the other atoms' centre (slabs: straight up)."""
    centre = np.delete(atoms.positions, -1, axis=0).mean(0)
    direction = np.array([0.0, 0.0, 1.0]) if atoms.pbc[2] else atoms.positions[-1] - centre
    return direction / np.linalg.norm(direction)


def _pull_points(model, atoms: Atoms, fractions) -> list[tuple[float, float, int]]:
    """``(energy, force along the pull, neighbour count of the pulled atom)`` with the last atom moved
    by ``fraction * PULL_DISTANCE`` along :func:`_pull_direction`, for each fraction (batched)."""
    direction = _pull_direction(atoms)
    frames = []
    for fraction in fractions:
        frame = atoms.copy()
        frame.positions[-1] += direction * PULL_DISTANCE * fraction
        frames.append(frame)
    device, dtype = _placement(model, None)
    points = []
    for start in range(0, len(frames), 100):  # one forward pass per 100 frames
        graph = AtomicGraph.from_atoms(frames[start : start + 100], model.cutoff, dtype=dtype, device=device)
        out = model(graph)
        force = out["forces"][graph.ptr[1:] - 1].double().cpu().numpy() @ direction
        receivers = graph.edge_index[1]
        is_last = receivers == graph.ptr[1:][graph.batch[receivers]] - 1
        edges = torch.bincount(graph.batch[receivers[is_last]], minlength=graph.num_graphs).tolist()
        points += zip(out["energy"].tolist(), force.tolist(), edges)
    return points


def work_residual(energy_a, energy_b, force_a, force_b, length):
    """Trapezoid error of the work integral over a path segment: ``|E_b - E_a + (F_a + F_b)/2 * length|``
    (``F`` the force along the path, ``length`` in Å; ``dE = -F dx``). For a smooth energy it is
    ``length^3 |d3E/dx3| / 12`` to leading order. Numbers or numpy arrays (one entry per segment)."""
    return abs(energy_b - energy_a + 0.5 * (force_a + force_b) * length)


def _segment_residual(a, b, length: float) -> float:
    """:func:`work_residual` between two :func:`_pull_points`."""
    return work_residual(a[0], b[0], a[1], b[1], length)


def _crossings(points) -> int:
    """Steps between consecutive :func:`_pull_points` at which the pulled atom's neighbour count changed."""
    return sum(a[2] != b[2] for a, b in zip(points[:-1], points[1:]))


def pull_scan(model, atoms: Atoms, steps: int = 400) -> tuple[float, int]:
    """Pull the last atom straight away from the others (slabs: straight up) by 4.2 Å in ``steps`` steps.

    Returns (max over steps of |E_{k+1} - E_k + (F_k + F_{k+1})/2 . dx|, number of steps at which
    the atom's neighbour count changed). The residual is the trapezoid error of the work integral:
    for a smooth energy it falls as steps^-3; a jump at the cutoff would not shrink.
    """
    points = _pull_points(model, atoms, np.linspace(0.0, 1.0, steps + 1))
    length = PULL_DISTANCE / steps
    residual = max(_segment_residual(points[k], points[k + 1], length) for k in range(steps))
    return float(residual), _crossings(points)


def check_smoothness(model, atoms: Atoms, steps: int = 400, limit: float = 1e-5, max_steps: int = 1600) -> float:
    """The energy changes smoothly while an atom crosses neighbours' cutoff spheres.

    The path residual of :func:`pull_scan` must fall below ``limit`` (1e-2 meV) on every step. A
    strongly curved but smooth model may need finer steps there: each step above the limit is halved
    (down to the length of ``max_steps`` steps over the path), and halving must shrink its residual
    at least 4x (smooth: 8x; a jump: not at all). Only the steps above the limit are refined, so the
    verdict is that of halving every step, for the cost of the few that need it.
    """
    fractions = list(np.linspace(0.0, 1.0, steps + 1))
    points = dict(zip(fractions, _pull_points(model, atoms, fractions)))
    _require(_crossings([points[f] for f in fractions]) >= 3, "the scan did not move the atom across neighbours' cutoff spheres")
    residual_of = lambda a, b: _segment_residual(points[a], points[b], (b - a) * PULL_DISTANCE)  # noqa: E731
    segments = [(a, b, residual_of(a, b)) for a, b in zip(fractions[:-1], fractions[1:])]
    while True:
        worst = max(segments, key=lambda seg: seg[2])
        above = [seg for seg in segments if seg[2] > limit]
        if not above or steps >= max_steps:
            break
        steps *= 2
        middles = [(a + b) / 2 for a, b, _ in above]
        points.update(zip(middles, _pull_points(model, atoms, middles)))
        halves = {(a, b): [(a, m, residual_of(a, m)), (m, b, residual_of(m, b))]
                  for (a, b, _), m in zip(above, middles)}
        for a, b, residual in above:
            finer = max(r for _, _, r in halves[(a, b)])
            _require(finer <= residual / 4, f"path residual {residual:.3g} -> {finer:.3g} eV when the step halves "
                                            f"(at {a * PULL_DISTANCE:.3f} Å): not converging like a smooth energy "
                                            "(a jump or kink)")
        segments = [half for seg in segments for half in (halves.get(seg[:2]) or [seg])]
    _require(worst[2] <= limit, f"max |dE + F.dx| = {worst[2] * 1e3:.3g} meV at {steps} steps "
                                f"(bound {limit * 1e3:g} meV)")
    return worst[2]


def check_linear_near_symmetric_point(model, rtol: float = 0.25) -> float:
    """Forces grow linearly, with one force constant, when an atom leaves a high-symmetry position
    (the energy is twice differentiable there, on the length scale of chemistry): in a perfect fcc
    crystal, displacing one atom by d = 1e-6 Å and by d = 1e-3 Å gives force constants |F|/d that
    agree to ``rtol``. A normalisation that divides features vanishing by symmetry by the square
    root of a tiny epsilon fails this: it gives micro-displacements forces of eV/Å."""
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True)
    constants = []
    for d in (1e-6, 1e-3):
        atoms = crystal.copy()
        atoms.positions[0] += d * np.array([0.6, 0.48, 0.64])  # a unit vector in a low-symmetry direction
        constants.append(np.abs(evaluate(model, atoms)["forces"]).max() / d)
    _require(min(constants) > 0, "no restoring force at all: trivially zero")
    change = abs(constants[1] - constants[0]) / max(constants)
    _require(change <= rtol, f"force constant |F|/d is {constants[0]:.3g} eV/Å² at 1e-6 Å but {constants[1]:.3g} "
                             f"at 1e-3 Å (relative change {change:.2g}, bound {rtol:g}): the energy is not smooth "
                             "near a symmetric configuration")
    return change


# ---------------------------------------------------------------------- conventions
def check_deterministic(model) -> None:
    """The same input gives bit-identical outputs on one device; slab stress is NaN (not periodic)."""
    device, dtype = _placement(model, None)
    graph = AtomicGraph.from_atoms(slab_with_co(), model.cutoff, dtype=dtype, device=device)
    a, b = model(graph, stress=True), model(graph, stress=True)
    _require(bool(torch.isnan(a["stress"]).all()), "stress of a slab (pbc in x, y only) must be NaN")
    for key in a:
        _require(torch.equal(a[key].nan_to_num(), b[key].nan_to_num()), f"{key} differs between identical calls")


def check_isolated_atoms(model) -> None:
    """Atoms without neighbours contribute exactly their reference energy E0 and feel no force."""
    e0 = model.e0_dict()
    out = evaluate(model, Atoms("CuOH", positions=[[0, 0, 0], [10, 0, 0], [0, 10, 0]]))
    expected = e0[29] + e0[8] + e0[1]
    _require(abs(out["energy"][0] - expected) <= 1e-9, f"isolated atoms: energy {out['energy'][0]} != {expected}")
    _require(np.abs(out["forces"]).max() == 0.0, "isolated atoms feel a force")
    single = evaluate(model, Atoms("C"))["energy"][0]
    _require(abs(single - e0[6]) <= 1e-9, f"single atom: energy {single} != E0 {e0[6]}")


def check_batch(model) -> None:
    """A batch of structures gives each structure's own energy and forces."""
    systems = [ethanol(), slab_with_co(), Atoms("O")]
    device, dtype = _placement(model, None)
    batch = AtomicGraph.from_atoms(systems, model.cutoff, dtype=dtype, device=device)
    out = model(batch)
    for k, atoms in enumerate(systems):
        single = evaluate(model, atoms)
        sl = slice(int(batch.ptr[k]), int(batch.ptr[k + 1]))
        _require(abs(out["energy"][k].item() - single["energy"][0]) < 1e-9, f"batched energy {k} differs")
        _require(np.abs(out["forces"][sl].double().cpu().numpy() - single["forces"]).max() < 1e-10,
                 f"batched forces of structure {k} differ")


def check_unknown_element(model) -> None:
    """An element the model does not know is a StructureError naming it."""
    try:
        evaluate(model, Atoms("FeO", positions=[[0, 0, 0], [1.6, 0, 0]]))
    except StructureError as exc:
        _require("Fe (Z=26)" in str(exc), f"the error does not name the element: {exc}")
        return
    raise ModelCheckError("an unknown element (Fe) was accepted")


def check_float32(model, energy_rtol: float = 1e-6, force_rtol: float = 1e-3) -> tuple[float, float]:
    """A float32 copy agrees with the float64 model (the model itself is left untouched)."""
    atoms = slab_with_co()
    ref = evaluate(model, atoms)
    single = copy.deepcopy(model).float()
    out = evaluate(single, atoms, dtype=torch.float32)
    e_err = abs(out["energy"][0] - ref["energy"][0]) / abs(ref["energy"][0])
    f_err = np.abs(out["forces"] - ref["forces"]).max() / max(1.0, np.abs(ref["forces"]).max())
    _require(e_err <= energy_rtol, f"float32 energy differs by {e_err:.2e} (relative; bound {energy_rtol:g})")
    _require(f_err <= force_rtol, f"float32 forces differ by {f_err:.2e} (relative; bound {force_rtol:g})")
    return e_err, f_err
