"""IS2RS/IS2RE by relaxation: relax the initial structures with a model and score the results against
the reference relaxations (:mod:`mlff.train.oc20_metrics`).

``batched`` relaxes every structure in one graph per step (:func:`mlff.dynamics.batched.relax`, ASE's
FIRE for each); otherwise ASE's own FIRE relaxes them one at a time. Both follow the same FIRE, so
they reach the same structures; only the time differs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ase import Atoms
from ase.optimize import FIRE

from mlff.calculator import MLFFCalculator
from mlff.dynamics import batched as batched_dynamics
from mlff.train.oc20_metrics import relaxation_metrics


def evaluate_relaxations(calc: MLFFCalculator, pairs: Sequence[tuple[Atoms, Atoms]], fmax: float = 0.05,
                         steps: int = 300, batched: bool = True) -> dict[str, float]:
    """Relax each ``initial`` of ``pairs`` with ``calc`` to ``fmax`` eV/Å (at most ``steps`` steps) and
    return the relaxation metrics against each ``relaxed`` reference, with the wall time per relaxation."""
    starts = [initial.copy() for initial, _ in pairs]
    start = time.perf_counter()
    if batched:
        run = batched_dynamics.relax(starts, calc, fmax=fmax, steps=steps)
        energies, converged, counts = [e[-1] for e in run.energies], run.converged, run.relax_steps
    else:
        energies, converged, counts = [], [], []
        for atoms in starts:
            atoms.calc = calc
            optimizer = FIRE(atoms, logfile=None)
            converged.append(bool(optimizer.run(fmax=fmax, steps=steps)))
            energies.append(atoms.get_potential_energy())
            counts.append(optimizer.nsteps)
    seconds = time.perf_counter() - start
    references = [relaxed.get_potential_energy() for _, relaxed in pairs]
    metrics = relaxation_metrics(starts, [relaxed for _, relaxed in pairs], energies, references, converged, counts)
    metrics["seconds_per_relaxation"] = seconds / max(len(pairs), 1)
    return metrics


def format_relaxations(m: dict, mode: str) -> str:
    return (f"IS2RS/IS2RE ({m['structures']} relaxations, {mode}): ADwT {100 * m['adwt']:.1f} % (mean distance "
            f"{m['mean_distance']:.3f} Å), relaxed-energy MAE {m['energy_mae']:.4f} eV, EwT {100 * m['ewt']:.1f} %, "
            f"converged {100 * m['converged']:.0f} %, {m['mean_steps']:.1f} steps and "
            f"{m['seconds_per_relaxation']:.2f} s per relaxation")
