"""Run a deck whose ``structures:`` list is a batch: every structure in one graph per step.

Each structure (and each of its ``copies``) gets its own initial velocities and random stream
(``md.seed + k``), its own trajectory, log and figure (``<name>.<k><suffix>``), and its own line in
the summary. See :mod:`mlff.dynamics.batched` for the integrators.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary, ZeroRotation

from mlff.compat import thermalize_momenta
from mlff.data.validation import check_species, validate_atoms
from mlff.dynamics import batched
from mlff.dynamics.deck import Deck
from mlff.dynamics.plot import plot_md, plot_relax
from mlff.dynamics.runner import figure_caption, make_calculator
from mlff.dynamics.structure import build_structure


@dataclass
class BatchSummary:
    kind: str
    seconds: float
    evaluations: int
    lines: list[str]
    paths: list[Path]

    def format(self) -> str:
        rate = self.evaluations / max(self.seconds, 1e-9)
        head = (f"batched {self.kind}: {len(self.lines)} structures, {self.evaluations} model calls in "
                f"{self.seconds:.1f} s ({rate:.2f} calls/s for all of them)")
        return "\n".join([head, *self.lines])


def per_structure(path: str, k: int) -> Path:
    """``run.xyz`` -> ``run.<k>.xyz``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{k}{p.suffix}")


def structures(deck: Deck) -> list[Atoms]:
    """The batch, validated, each entry repeated ``copies`` times."""
    batch = []
    for i, spec in enumerate(deck.structures):
        atoms = build_structure(spec)
        validate_atoms(atoms, where=f"structures[{i}]")
        batch += [atoms.copy() for _ in range(spec.copies)]
    return batch


def run_batch(deck: Deck, command: str | None = None) -> BatchSummary:
    """Run the deck's batch; ``command`` (what the user ran) goes into the figures' captions."""
    batch = structures(deck)
    every = Atoms(numbers=sorted({int(z) for atoms in batch for z in atoms.numbers}))
    calc = make_calculator(deck.potential, every)
    for k, atoms in enumerate(batch):
        check_species(atoms.numbers, calc.model.species, prefix=f"structure {k}: ")
    out = deck.output
    trajectories = [per_structure(out.trajectory, k) for k in range(len(batch))]
    start = time.perf_counter()
    caption = figure_caption(deck, command, api="run_batch")
    if deck.md is not None:
        kind, (evaluations, lines) = f"MD {deck.md.ensemble}", _md(deck, batch, calc, trajectories, caption)
    else:
        kind, (evaluations, lines) = "relax FIRE", _relax(deck, batch, calc, trajectories, caption)
    return BatchSummary(kind, time.perf_counter() - start, evaluations, lines, trajectories)


def _figure(out, k: int, count: int, caption: str) -> tuple[Path | None, str]:
    """Structure ``k``'s figure path (None without ``output.plot``) and its caption."""
    return (per_structure(out.plot, k) if out.plot else None), f"{caption} · structure {k} of {count}"


def _md(deck: Deck, batch, calc, trajectories, caption: str):
    md, out = deck.md, deck.output
    initial = md.temperature if md.initial_temperature is None else md.initial_temperature
    # one stream per structure for its velocities and its Langevin noise
    rngs = [np.random.default_rng(md.seed + k) for k in range(len(batch))]
    for atoms, rng in zip(batch, rngs):
        thermalize_momenta(atoms, temperature_K=initial, rng=rng)
        Stationary(atoms)
        if not any(atoms.pbc):
            ZeroRotation(atoms)
    run = batched.run_md(batch, calc, md.timestep, md.steps, ensemble=md.ensemble, temperature=md.temperature,
                         friction=md.friction, seed=rngs, trajectories=trajectories, interval=out.interval)
    times = np.arange(md.steps + 1) * md.timestep / 1000  # ps
    lines = []
    for k, atoms in enumerate(batch):
        total, potential = np.array(run.totals[k]), np.array(run.energies[k])
        temperature = (total - potential) / (1.5 * units.kB * len(atoms))
        _log(per_structure(out.log, k), times, potential, total, temperature, out.log_interval)
        line = f"  structure {k} ({atoms.get_chemical_formula()}): T mean {temperature.mean():.1f} K"
        drift = None
        if md.ensemble == "nve" and len(times) > 2:
            drift = float(np.polyfit(times, total / len(atoms), 1)[0] * 1000)
            line += f", drift {drift:+.4f} meV/atom/ps"
        lines.append(line + f" -> {trajectories[k]}")
        plot, text = _figure(out, k, len(batch), caption)
        if plot is not None:
            series = {"time_ps": times, "total": total, "potential": potential, "kinetic": total - potential,
                      "temperature": temperature}
            plot_md(series, str(plot), len(atoms), md.ensemble, initial if md.ensemble == "nve" else md.temperature,
                    drift, text)
    return run.evaluations, lines


def _relax(deck: Deck, batch, calc, trajectories, caption: str):
    relax = deck.relax
    run = batched.relax(batch, calc, fmax=relax.fmax, steps=relax.steps, trajectories=trajectories)
    lines = [f"  structure {k} ({atoms.get_chemical_formula()}): {'converged' if run.converged[k] else 'NOT converged'}"
             f" in {run.relax_steps[k]} steps, E {run.energies[k][-1]:.6f} eV -> {trajectories[k]}"
             for k, atoms in enumerate(batch)]
    for k in range(len(batch)):
        plot, text = _figure(deck.output, k, len(batch), caption)
        if plot is not None:
            series = {"step": list(range(len(run.fmax[k]))), "potential": run.energies[k], "fmax": run.fmax[k]}
            plot_relax(series, str(plot), relax.fmax, text)
    return run.evaluations, lines


def _log(path: Path, times, potential, total, temperature, interval: int) -> None:
    """An MD log like ASE's: time, total, potential and kinetic energy, temperature (written whole, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w") as handle:
        handle.write(f"{'Time[ps]':>10} {'Etot[eV]':>14} {'Epot[eV]':>14} {'Ekin[eV]':>12} {'T[K]':>9}\n")
        for i in range(0, len(times), interval):
            handle.write(f"{times[i]:10.4f} {total[i]:14.6f} {potential[i]:14.6f} {total[i] - potential[i]:12.6f} "
                         f"{temperature[i]:9.1f}\n")
    partial.replace(path)
