"""IS2RS/IS2RE by relaxation: relax the initial structures with a model and score the results against
the reference relaxations (:mod:`mlff.train.oc20_metrics`).

``batched`` relaxes every structure in one graph per step (:func:`mlff.dynamics.batched.relax`, ASE's
FIRE for each); otherwise ASE's own FIRE relaxes them one at a time. Both follow the same FIRE, so
they reach the same structures; only the time differs.

The reference relaxations may come from another optimizer (``mlff data generate relaxations`` uses
LBFGS to 0.02 eV/Å), and two optimizers from one start often stop in different minima, so their
relaxed-energy MAE mixes the model's error with the optimizers'. With ``method`` (the method that
labelled the data) :func:`check_with_method` removes that part and tests the end points themselves:

* the method relaxed from each start with the same FIRE, ``fmax`` and steps as the model: the IS2RS/IS2RE
  metrics against these (``matched_*``) are zero for a perfect model;
* the method at the model's end points: the model's energy error there, the largest free-atom force,
  and the energy the method still gains relaxing on from there with the same FIRE; more than
  :data:`SPURIOUS_GAIN` counts the end point as a spurious minimum (a minimum of the model only).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.optimize import FIRE

from mlff.calculator import MLFFCalculator
from mlff.data.generate.methods import reference_calculator
from mlff.dynamics import batched as batched_dynamics
from mlff.train.oc20_metrics import free_mask, relaxation_metrics

SPURIOUS_GAIN = 0.1  # eV: five times OC20's energy threshold, far above a converged end point's gain


def _fire(atoms: Atoms, calc, fmax: float, steps: int) -> tuple[float, bool, int]:
    atoms.calc = calc
    optimizer = FIRE(atoms, logfile=None)
    converged = bool(optimizer.run(fmax=fmax, steps=steps))
    return atoms.get_potential_energy(), converged, optimizer.nsteps


def evaluate_relaxations(calc: MLFFCalculator, pairs: Sequence[tuple[Atoms, Atoms]], fmax: float = 0.05,
                         steps: int = 300, batched: bool = True, method: str | None = None) -> dict[str, float]:
    """Relax each ``initial`` of ``pairs`` with ``calc`` to ``fmax`` eV/Å (at most ``steps`` steps) and
    return the relaxation metrics against each ``relaxed`` reference, with the wall time per relaxation;
    with ``method``, also :func:`check_with_method`'s metrics."""
    starts = [initial.copy() for initial, _ in pairs]
    start = time.perf_counter()
    if batched:
        run = batched_dynamics.relax(starts, calc, fmax=fmax, steps=steps)
        energies, converged, counts = [e[-1] for e in run.energies], run.converged, run.relax_steps
    else:
        energies, converged, counts = map(list, zip(*(_fire(atoms, calc, fmax, steps) for atoms in starts)))
    seconds = time.perf_counter() - start
    references = [relaxed.get_potential_energy() for _, relaxed in pairs]
    metrics = relaxation_metrics(starts, [relaxed for _, relaxed in pairs], energies, references, converged, counts)
    metrics["seconds_per_relaxation"] = seconds / max(len(pairs), 1)
    if method is not None:
        metrics.update(check_with_method([initial for initial, _ in pairs], starts, energies, method, fmax, steps))
    return metrics


def check_with_method(initials: Sequence[Atoms], ends: Sequence[Atoms], energies: Sequence[float], method: str,
                      fmax: float, steps: int) -> dict[str, float]:
    """The module docstring's checks of a model's relaxations from ``initials`` to ``ends`` (its relaxed
    ``energies``) with the reference ``method``, which relaxes with ASE's FIRE to ``fmax`` in ``steps``."""
    matched = [initial.copy() for initial in initials]
    runs = [_fire(atoms, reference_calculator(method), fmax, steps) for atoms in matched]
    matched_energies, matched_converged, matched_steps = map(list, zip(*runs))
    at_end, end_fmax, gains = [], [], []
    for end in ends:
        atoms = end.copy()
        atoms.calc = reference_calculator(method)
        at_end.append(atoms.get_potential_energy())
        end_fmax.append(float(np.linalg.norm(atoms.get_forces()[free_mask(atoms)], axis=1).max()))
        gains.append(at_end[-1] - _fire(atoms, atoms.calc, fmax, steps)[0])
    scores = relaxation_metrics(list(ends), matched, energies, matched_energies, matched_converged, matched_steps)
    gains = np.asarray(gains)
    return {"method": method, "matched_adwt": scores["adwt"], "matched_mean_distance": scores["mean_distance"],
            "matched_energy_mae": scores["energy_mae"], "matched_ewt": scores["ewt"],
            "method_converged": scores["converged"],
            "end_energy_mae": float(np.abs(np.asarray(energies) - np.asarray(at_end)).mean()),
            "end_fmax_median": float(np.median(end_fmax)), "end_fmax_max": float(np.max(end_fmax)),
            "end_gain_max": float(gains.max()), "spurious": int((gains > SPURIOUS_GAIN).sum())}


def optimizer_note(pairs: Sequence[tuple[Atoms, Atoms]], fmax: float) -> str | None:
    """A warning when the references were relaxed (as their frames record) otherwise than FIRE to ``fmax``."""
    used = {(relaxed.info.get("optimizer"), relaxed.info.get("fmax")) for _, relaxed in pairs}
    used = sorted(f"{name} to {limit} eV/Å" for name, limit in used if name and (name != "FIRE" or limit != fmax))
    if not used:
        return None
    return (f"the references were relaxed with {', '.join(used)}, these with FIRE to {fmax} eV/Å: the relaxed-energy "
            f"MAE includes where the two optimizers stop (--check-method scores against the same FIRE)")


def format_relaxations(m: dict, mode: str) -> str:
    text = (f"IS2RS/IS2RE ({m['structures']} relaxations, {mode}): ADwT {100 * m['adwt']:.1f} % (mean distance "
            f"{m['mean_distance']:.3f} Å), relaxed-energy MAE {m['energy_mae']:.4f} eV, EwT {100 * m['ewt']:.1f} %, "
            f"converged {100 * m['converged']:.0f} %, {m['mean_steps']:.1f} steps and "
            f"{m['seconds_per_relaxation']:.2f} s per relaxation")
    if "method" not in m:
        return text
    return (f"{text}\n  against {m['method']} relaxed with the same FIRE from each start "
            f"({100 * m['method_converged']:.0f} % converged): ADwT {100 * m['matched_adwt']:.1f} % (mean distance "
            f"{m['matched_mean_distance']:.3f} Å), relaxed-energy MAE {m['matched_energy_mae']:.4f} eV, "
            f"EwT {100 * m['matched_ewt']:.1f} %\n  {m['method']} at the model's end points: energy error MAE "
            f"{1e3 * m['end_energy_mae']:.1f} meV, largest free-atom force median {m['end_fmax_median']:.3f} max "
            f"{m['end_fmax_max']:.3f} eV/Å; spurious minima {m['spurious']} of {m['structures']} "
            f"({m['method']} gains more than {SPURIOUS_GAIN} eV relaxing on; largest gain {m['end_gain_max']:.3f} eV)")
