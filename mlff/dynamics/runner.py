"""Run a deck: MD with ASE's integrators or a relaxation with ASE's optimizers.

The structure is validated (finite positions, sane cell, no overlapping atoms, elements the
potential knows) before anything else touches it. Writes the trajectory (atomically), an ASE-style
log, a PNG of energies and temperature (and, for NPT, pressure and volume) versus time, and returns
a summary (including the NVE drift in meV/atom/ps). The guard stops a run that blows up; the
trajectory then ends with the last good frame.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import typing
from dataclasses import dataclass, field

import ase.optimize
import numpy as np
import torch
from ase import Atoms, units
from ase.filters import FrechetCellFilter
from ase.md import MDLogger
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from mlff.calculator import MLFFCalculator
from mlff.compat import thermalize_momenta
from mlff.data.labels import set_labels
from mlff.data.validation import check_species, validate_atoms
from mlff.dynamics.deck import Deck, MDSpec, Optimizer, PotentialSpec, StructureSpec
from mlff.dynamics.guard import BlowUp, check
from mlff.dynamics.plot import plot_md, plot_relax
from mlff.dynamics.structure import build_structure
from mlff.dynamics.trajectory import TrajectoryWriter
from mlff.errors import ConfigError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network

logger = logging.getLogger(__name__)
OPTIMIZERS = {name: getattr(ase.optimize, name) for name in typing.get_args(Optimizer)}


@dataclass
class RunSummary:
    kind: str
    steps: int
    seconds: float
    frames: int
    stopped: str | None = None  # the guard's reason, if it stopped the run
    drift_mev_atom_ps: float | None = None
    converged: bool | None = None
    series: dict = field(default_factory=dict)

    def format(self) -> str:
        rate = self.steps / max(self.seconds, 1e-9)
        lines = [f"{self.kind}: {self.steps} steps in {self.seconds:.1f} s ({rate:.1f} steps/s), "
                 f"{self.frames} frames written"]
        if self.drift_mev_atom_ps is not None:
            lines.append(f"NVE energy drift: {self.drift_mev_atom_ps:+.3g} meV/atom/ps")
        if self.converged is not None:
            lines.append("converged" if self.converged else "not converged within the step limit")
        if self.stopped:
            lines.append(f"stopped by the guard: {self.stopped}; the trajectory ends with the last good frame")
        return "\n".join(lines)


@contextlib.contextmanager
def _recording(out, description: str, total: int):
    """Trajectory writer and progress bar for a run.

    On success (including a guard stop) the finished trajectory replaces the target; if the run
    crashes the target keeps its old content and the frames written so far stay in the partial file.
    """
    writer = TrajectoryWriter(out.trajectory)
    bar = tqdm(total=total, desc=description, unit="step", disable=not out.progress, file=sys.stderr)
    try:
        yield writer, bar
    except BaseException:
        bar.close()
        logger.error("run crashed; %s is unchanged, frames so far are in %s", out.trajectory, writer.abandon())
        raise
    bar.close()
    writer.close()


def _snapshot(atoms: Atoms) -> Atoms:
    """A copy carrying its own results (the live calculator moves on with the run)."""
    copy = atoms.copy()
    results = atoms.calc.results
    return set_labels(copy, results.get("energy"), results.get("forces"), results.get("stress"))


def make_calculator(spec: PotentialSpec, atoms: Atoms) -> MLFFCalculator:
    """The deck's potential: a checkpoint (path or shipped name), or an untrained registered network."""
    if spec.model is not None:
        return MLFFCalculator(spec.model, device=spec.device, dtype=spec.dtype, skin=spec.skin, compile=spec.compile,
                              chunk=spec.chunk)
    torch.manual_seed(spec.seed)
    species = spec.species or sorted(set(atoms.numbers.tolist()))
    network = build_network(spec.name, preset=spec.preset, species=species, **spec.options)
    logger.warning("potential is an UNTRAINED %s %s network (seed %d); results are not physical",
                   spec.name, spec.preset, spec.seed)
    return MLFFCalculator(EnergyModel(network), device=spec.device, dtype=spec.dtype, skin=spec.skin,
                          compile=spec.compile, chunk=spec.chunk)


def _where(spec: StructureSpec) -> str:
    if spec.system is not None:
        return f"structure.system {spec.system}"
    if spec.file is not None:
        return f"structure.file {spec.file} (frame {spec.index})"
    return f"structure.builder {spec.builder}"


def _structure(deck: Deck) -> Atoms:
    """The deck's structure, validated before anything else touches it."""
    atoms = build_structure(deck.structure)
    validate_atoms(atoms, where=_where(deck.structure))
    return atoms


def _attach_calculator(deck: Deck, atoms: Atoms) -> None:
    """The deck's potential, which must know every element of the structure."""
    atoms.calc = make_calculator(deck.potential, atoms)
    potential = deck.potential.model or f"untrained {deck.potential.name}"
    check_species(atoms.numbers, atoms.calc.model.species, prefix=f"{_where(deck.structure)}, potential {potential}: ")


def _integrator(atoms: Atoms, md: MDSpec, rng: np.random.Generator, logfile: str, log_interval: int):
    dt = md.timestep * units.fs
    if md.ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    elif md.ensemble == "langevin":
        dyn = Langevin(atoms, timestep=dt, temperature_K=md.temperature, friction=md.friction / units.fs,
                       fixcm=False, rng=rng)
    elif md.ensemble == "nose_hoover":
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=md.temperature, tdamp=md.tdamp * units.fs)
    else:
        dyn = IsotropicMTKNPT(atoms, timestep=dt, temperature_K=md.temperature, pressure_au=md.pressure * units.GPa,
                              tdamp=md.tdamp * units.fs, pdamp=md.pdamp * units.fs)
    dyn.attach(MDLogger(dyn, atoms, logfile, header=True, stress=md.ensemble == "npt", mode="w"),
               interval=log_interval)
    return dyn


MD_SERIES = ("time_ps", "potential", "kinetic", "total", "temperature")  # ps, eV, eV, eV, K
NPT_SERIES = ("pressure", "volume")  # GPa (instantaneous, with the ideal-gas term), Å^3


def _sample(atoms: Atoms, time_ps: float, temperature: float, npt: bool) -> dict:
    epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    sample = {"time_ps": time_ps, "potential": epot, "kinetic": ekin, "total": epot + ekin, "temperature": temperature}
    if npt:
        stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
        sample.update(pressure=-np.trace(stress) / 3 / units.GPa, volume=atoms.get_volume())
    return sample


def figure_caption(deck: Deck, command: str | None, api: str = "run_md/run_relax") -> str:
    """What produced a figure: the command (or the Python API function) and the potential."""
    spec = deck.potential
    model = spec.model or f"untrained {spec.name} {spec.preset}"
    return f"{command or f'mlff Python API ({api})'} · potential {model}"


def run_md(deck: Deck, command: str | None = None) -> RunSummary:
    """Run the deck's MD; ``command`` (what the user ran) goes into the figure's caption."""
    md, out = deck.md, deck.output
    atoms = _structure(deck)
    npt = md.ensemble == "npt"
    if npt and not all(atoms.pbc):
        raise ConfigError(f"md.ensemble npt needs a cell periodic in x, y and z, not pbc={atoms.pbc.tolist()}")
    if npt and atoms.constraints:
        raise ConfigError("md.ensemble npt: ASE's IsotropicMTKNPT does not support constraints (fixed atoms)")
    _attach_calculator(deck, atoms)
    initial_volume = atoms.get_volume() if npt else None
    initial = md.temperature if md.initial_temperature is None else md.initial_temperature
    # one stream for velocities and Langevin noise: two generators of one seed would draw the same numbers
    rng = np.random.default_rng(md.seed)
    thermalize_momenta(atoms, temperature_K=initial, rng=rng)
    Stationary(atoms)
    if not any(atoms.pbc):
        ZeroRotation(atoms)
    dyn = _integrator(atoms, md, rng, out.log, out.log_interval)
    series = {key: [] for key in MD_SERIES + (NPT_SERIES if npt else ())}
    n = len(atoms)
    stopped, last_good, step = None, None, 0
    start = time.perf_counter()
    with _recording(out, f"MD {md.ensemble}", md.steps) as (writer, bar):
        try:
            for step in range(md.steps + 1):
                if step:
                    dyn.run(1)
                    bar.update(1)
                temperature = atoms.get_temperature()
                check(atoms, deck.guard, temperature, initial_volume)
                last_good = _snapshot(atoms)
                if step % out.log_interval == 0 or step == md.steps:
                    sample = _sample(atoms, step * md.timestep / 1000, temperature, npt)
                    for key, value in sample.items():
                        series[key].append(value)
                    bar.set_postfix(T=f"{temperature:.0f}K", E=f"{sample['total']:.4f}eV")
                if step % out.interval == 0:
                    writer.write(atoms)
        except BlowUp as exc:
            stopped = str(exc)
            if last_good is not None:
                writer.write(last_good)
    seconds = time.perf_counter() - start
    drift = None
    if md.ensemble == "nve" and len(series["time_ps"]) > 2:
        slope = np.polyfit(series["time_ps"], np.asarray(series["total"]) / n, 1)[0]
        drift = float(slope * 1000)
    if out.plot:
        plot_md(series, out.plot, n, md.ensemble, initial if md.ensemble == "nve" else md.temperature, drift,
                figure_caption(deck, command), pressure=md.pressure if npt else None)
    return RunSummary("md", max(step, 0), seconds, writer.frames, stopped, drift, series=series)


def run_relax(deck: Deck, command: str | None = None) -> RunSummary:
    """Run the deck's relaxation; ``command`` (what the user ran) goes into the figure's caption."""
    relax, out = deck.relax, deck.output
    atoms = _structure(deck)
    if relax.cell and not all(atoms.pbc):
        raise ConfigError(f"relax.cell needs a cell periodic in x, y and z, not pbc={atoms.pbc.tolist()}")
    _attach_calculator(deck, atoms)
    initial_volume = atoms.get_volume() if relax.cell else None
    target = FrechetCellFilter(atoms) if relax.cell else atoms
    optimizer = OPTIMIZERS[relax.optimizer](target, logfile=out.log)
    series = {"step": [], "potential": [], "fmax": []} | ({"volume": [], "pressure": []} if relax.cell else {})
    stopped, last_good, converged = None, None, False
    start = time.perf_counter()
    with _recording(out, f"relax {relax.optimizer}", relax.steps) as (writer, bar):
        try:
            for _ in optimizer.irun(fmax=relax.fmax, steps=relax.steps):
                check(atoms, deck.guard, initial_volume=initial_volume)
                last_good = _snapshot(atoms)
                fmax = float(np.sqrt((target.get_forces() ** 2).sum(1)).max())
                series["step"].append(optimizer.nsteps)
                series["potential"].append(atoms.get_potential_energy())
                series["fmax"].append(fmax)
                if relax.cell:
                    series["volume"].append(atoms.get_volume())
                    series["pressure"].append(-np.trace(atoms.get_stress(voigt=False)) / 3 / units.GPa)
                if optimizer.nsteps % out.interval == 0:
                    writer.write(atoms)
                bar.update(1)
                bar.set_postfix(E=f"{series['potential'][-1]:.4f}eV", fmax=f"{fmax:.3f}")
                converged = fmax < relax.fmax
            writer.write(atoms)
        except BlowUp as exc:
            stopped = str(exc)
            if last_good is not None:
                writer.write(last_good)
    if out.plot:
        plot_relax(series, out.plot, relax.fmax, figure_caption(deck, command))
    return RunSummary("relax", optimizer.nsteps, time.perf_counter() - start, writer.frames, stopped,
                      converged=converged, series=series)
