"""Many independent structures stepped together: one graph and one model call per step for all.

On a GPU a small molecule cannot fill the device; a few hundred of them can. Each structure keeps
its own Verlet neighbour list, constraints, thermostat, random stream, convergence and output, and
follows the same trajectory as it would alone (up to the round-off of a bigger matrix product):

* :func:`run_md`: velocity Verlet (``"nve"``, ASE's algorithm, constraints included) or Langevin
  (``"langevin"``, the BAOAB splitting, one temperature and friction per structure);
* :func:`relax`: FIRE with ASE's parameters and update, each structure stopping at its own ``fmax``.

The structures are ASE ``Atoms`` and are updated in place; :class:`BatchedForces` evaluates them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlff.calculator import MLFFCalculator
from mlff.data.graph import AtomicGraph
from mlff.data.validation import validate_atoms
from mlff.data.verlet import VerletList
from mlff.dynamics.trajectory import TrajectoryWriter
from mlff.errors import ConfigError, StructureError
from mlff.kernels import use_backend


class BatchedForces:
    """Energies and forces of many structures from one model call (the calculator's model and options)."""

    def __init__(self, calc: MLFFCalculator, structures: Sequence[Atoms]):
        self.calc, self.structures = calc, list(structures)
        if not self.structures:
            raise StructureError("no structures given")
        for k, atoms in enumerate(self.structures):  # fail before any step (each call checks again)
            validate_atoms(atoms, where=f"structure {k}", species=calc.model.species)
        old = calc.neighbors
        self.neighbors = [VerletList(old.cutoff, skin=old.skin, backend=old.backend) for _ in self.structures]
        self.evaluations = 0

    def __call__(self, active: Sequence[int] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Potential energies ``[S]`` and forces (constraints applied, as ``get_forces(md=True)``) of the
        structures numbered ``active`` (default: all)."""
        active = range(len(self.structures)) if active is None else list(active)
        systems = [self.structures[k] for k in active]
        lists = [self.calc.neighbor_list(atoms, self.neighbors[k], where=f"structure {k}") for k, atoms in zip(active, systems)]
        graph = AtomicGraph.from_atoms(systems, self.calc.model.cutoff, dtype=self.calc.dtype, device=self.calc.device,
                                       labels=False, validate=False, neighbors=lists)
        with use_backend(self.calc.kernels):
            out = self.calc.model(graph, forces=True)
        self.evaluations += 1
        ptr = graph.ptr.tolist()
        forces = []
        for i, atoms in enumerate(systems):
            f = out["forces"][ptr[i]:ptr[i + 1]].double().cpu().numpy()
            for constraint in atoms.constraints:
                constraint.adjust_forces(atoms, f)
            forces.append(f)
        return out["energy"].cpu().numpy(), forces


@dataclass
class BatchedRun:
    """What a batched run did, per structure."""

    steps: int
    evaluations: int
    energies: list[list[float]] = field(default_factory=list)  # potential (MD: + kinetic in totals)
    totals: list[list[float]] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    relax_steps: list[int] = field(default_factory=list)
    fmax: list[list[float]] = field(default_factory=list)  # relaxation: largest force per step (eV/Å)


def _per_structure(value, count: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * count
    if len(values) != count:
        raise ConfigError(f"{name}: {len(values)} values for {count} structures")
    return values


def _writers(paths, count: int) -> list[TrajectoryWriter | None]:
    if paths is None:
        return [None] * count
    return [TrajectoryWriter(p) if p is not None else None for p in _per_structure(paths, count, "trajectories")]


def _close(writers, failed: bool) -> None:
    for w in writers:
        if w is not None:
            w.abandon() if failed else w.close()


def run_md(structures: Sequence[Atoms], calc: MLFFCalculator, timestep: float, steps: int,
           ensemble: str = "nve", temperature=300.0, friction=0.01, seed: int | Sequence[int] = 0,
           trajectories: Sequence[str | os.PathLike | None] | None = None, interval: int = 10) -> BatchedRun:
    """Step every structure ``steps`` times with ``timestep`` fs; momenta are taken as set on the Atoms.

    ``temperature`` (K) and ``friction`` (1/fs) are one value or one per structure (Langevin only);
    structure k draws its noise from ``numpy.random.default_rng(seeds[k])``, whatever else is in the
    batch (``seed``: one per structure, or an integer s for ``s, s + 1, ...``). ``trajectories``: one path (or None) per structure, written every ``interval`` steps
    (atomically, see :class:`~mlff.dynamics.trajectory.TrajectoryWriter`).
    """
    if ensemble not in ("nve", "langevin"):
        raise ConfigError(f"ensemble must be 'nve' or 'langevin', got {ensemble!r}")
    if not timestep > 0 or steps < 0 or interval < 1:
        raise ConfigError(f"need timestep > 0, steps >= 0 and interval >= 1, got {timestep}, {steps}, {interval}")
    forces_of = BatchedForces(calc, structures)
    systems = forces_of.structures
    count, dt = len(systems), timestep * units.fs
    temperatures = _per_structure(temperature, count, "temperature")
    frictions = [g / units.fs for g in _per_structure(friction, count, "friction")]
    seeds = [seed + k for k in range(count)] if isinstance(seed, int) else _per_structure(seed, count, "seed")
    rngs = [np.random.default_rng(s) for s in seeds]
    writers = _writers(trajectories, count)
    run = BatchedRun(steps, 0, [[] for _ in systems], [[] for _ in systems])
    energies, forces = forces_of()

    def record(step: int) -> None:
        for k, atoms in enumerate(systems):
            run.energies[k].append(float(energies[k]))
            run.totals[k].append(float(energies[k]) + atoms.get_kinetic_energy())
            if writers[k] is not None and step % interval == 0:
                _write(writers[k], atoms, energies[k], forces[k])

    failed = True
    try:
        record(0)
        for step in range(1, steps + 1):
            for k, atoms in enumerate(systems):  # B A (O A) of BAOAB; velocity Verlet's first half
                p = atoms.get_momenta() + 0.5 * dt * forces[k]
                masses = atoms.get_masses()[:, None]
                if ensemble == "langevin":
                    _drift(atoms, p, masses, 0.5 * dt)
                    c = np.exp(-frictions[k] * dt)
                    sigma = np.sqrt((1 - c * c) * masses * units.kB * temperatures[k])
                    p = c * atoms.get_momenta() + sigma * rngs[k].standard_normal(p.shape)
                    _drift(atoms, p, masses, 0.5 * dt)
                else:
                    _drift(atoms, p, masses, dt)
            energies, forces = forces_of()
            for k, atoms in enumerate(systems):  # the last B
                atoms.set_momenta(atoms.get_momenta() + 0.5 * dt * forces[k])
            record(step)
        failed = False
    finally:
        _close(writers, failed)
    run.evaluations = forces_of.evaluations
    return run


def _drift(atoms: Atoms, p: np.ndarray, masses: np.ndarray, dt: float) -> None:
    """Move by ``dt p / m`` and keep the momenta the constraints allow (RATTLE's first half, as ASE)."""
    r = atoms.get_positions()
    atoms.set_positions(r + dt * p / masses)
    if atoms.constraints:
        p = (atoms.get_positions() - r) * masses / dt
    atoms.set_momenta(p, apply_constraint=False)


def _write(writer: TrajectoryWriter, atoms: Atoms, energy: float, forces: np.ndarray) -> None:
    frame = atoms.copy()
    frame.calc = SinglePointCalculator(frame, energy=float(energy), forces=forces)
    writer.write(frame)


#: ASE's FIRE defaults (ase.optimize.FIRE)
FIRE = dict(dt=0.1, maxstep=0.2, dtmax=1.0, Nmin=5, finc=1.1, fdec=0.5, astart=0.1, fa=0.99, a=0.1)


def relax(structures: Sequence[Atoms], calc: MLFFCalculator, fmax=0.05, steps: int = 500,
          trajectories: Sequence[str | os.PathLike | None] | None = None) -> BatchedRun:
    """FIRE on every structure at once; each stops when its largest force is below its ``fmax`` (eV/Å).

    The update is ASE's FIRE with its default parameters, so a structure relaxes exactly as
    ``ase.optimize.FIRE`` would relax it alone; converged structures leave the batch.
    """
    forces_of = BatchedForces(calc, structures)
    systems = forces_of.structures
    count = len(systems)
    limits = _per_structure(fmax, count, "fmax")
    state = [dict(FIRE, vel=None, Nsteps=0) for _ in systems]
    writers = _writers(trajectories, count)
    run = BatchedRun(0, 0, [[] for _ in systems], [[] for _ in systems], [False] * count, [0] * count,
                     [[] for _ in systems])
    active = list(range(count))
    failed = True
    try:
        for _ in range(steps + 1):
            energies, forces = forces_of(active)
            still = []
            for k, energy, f in zip(active, energies, forces):
                run.energies[k].append(float(energy))
                run.fmax[k].append(float(np.sqrt((f**2).sum(1).max())))
                if writers[k] is not None:
                    _write(writers[k], systems[k], energy, f)
                if run.fmax[k][-1] < limits[k]:
                    run.converged[k] = True
                elif run.relax_steps[k] < steps:
                    _fire_step(systems[k], f, state[k])
                    run.relax_steps[k] += 1
                    still.append(k)
            active = still
            if not active:
                break
        failed = False
    finally:
        _close(writers, failed)
    run.steps, run.evaluations = max(run.relax_steps), forces_of.evaluations
    return run


def _fire_step(atoms: Atoms, forces: np.ndarray, s: dict) -> None:
    """One step of ASE's FIRE (``ase.optimize.FIRE.step``, no downhill check) on ``atoms``."""
    gradient = forces.ravel()
    if s["vel"] is None:
        s["vel"] = np.zeros(gradient.shape)
    else:
        vf, grad2 = np.vdot(gradient, s["vel"]), np.vdot(gradient, gradient)
        if vf > 0.0:
            s["vel"] = (1.0 - s["a"]) * s["vel"] + s["a"] * gradient / np.sqrt(grad2) * np.sqrt(np.vdot(s["vel"], s["vel"]))
            if s["Nsteps"] > s["Nmin"]:
                s["dt"] = min(s["dt"] * s["finc"], s["dtmax"])
                s["a"] *= s["fa"]
            s["Nsteps"] += 1
        else:
            s["vel"][:] *= 0.0
            s["a"] = s["astart"]
            s["dt"] *= s["fdec"]
            s["Nsteps"] = 0
    s["vel"] += s["dt"] * gradient
    dr = s["dt"] * s["vel"]
    norm = np.sqrt(np.vdot(dr, dr))
    if norm > s["maxstep"]:
        dr = s["maxstep"] * dr / norm
    atoms.set_positions(atoms.get_positions() + dr.reshape(-1, 3))

