"""``mlff bench smoothness``: how smooth a potential is along bond scans, next to its reference method.

One atom of a bond i-j is moved along the bond (compression below 0, stretch above) in steps of
``h`` Å, with everything else fixed. Between two neighbouring points the energy change and the
trapezoid work of the forces differ by ``|dE + (F_a + F_b)/2 . dx| = h^3 |E'''| / 12`` to leading
order. This residual is what an MD integrator feels as roughness; its largest value along the scan,
and the third derivative it implies, are printed for the potential and for the method it was
trained on (GFN2-xTB through tblite for molecules, EMT for metals) on the same points. A potential
that is as smooth as its reference has a ratio near 1; the issue's goal is within 3x.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlff.calculator import MLFFCalculator
from mlff.data.generate.md17 import serial_openmp
from mlff.data.generate.methods import reference_calculator
from mlff.data.generate.molecules import load_molecule
from mlff.errors import ConfigError
from mlff.testing.checks import work_residual


@dataclass
class Scan:
    """Residuals of one scan: ``residuals[k]`` is the segment between ``offsets[k]`` and ``offsets[k + 1]``."""

    offsets: np.ndarray
    residuals: np.ndarray

    @property
    def step(self) -> float:
        return float(self.offsets[1] - self.offsets[0])

    @property
    def worst(self) -> tuple[float, float]:
        """(largest residual in eV, the middle of its segment in Å)."""
        k = int(np.argmax(self.residuals))
        return float(self.residuals[k]), float(0.5 * (self.offsets[k] + self.offsets[k + 1]))

    @property
    def third_derivative(self) -> float:
        """``|E'''|`` in eV/Å³ implied by the largest residual (``12 r / h^3``)."""
        return 12 * self.worst[0] / self.step**3


def bond_scan(calc, atoms: Atoms, i: int, j: int, start: float, stop: float, step: float) -> Scan:
    """Move atom ``j`` along the bond from ``i`` by offsets ``start..stop`` (Å) and measure the residuals."""
    if not (stop > start and step > 0):
        raise ConfigError(f"need stop > start and step > 0, got {start}, {stop}, {step}")
    direction = atoms.positions[j] - atoms.positions[i]
    direction /= np.linalg.norm(direction)
    offsets = np.arange(start, stop + 0.5 * step, step)
    energies, forces = [], []
    for offset in offsets:
        frame = atoms.copy()
        frame.positions[j] += offset * direction
        frame.calc = calc
        energies.append(frame.get_potential_energy())
        forces.append(frame.get_forces()[j] @ direction)
    energies, forces = np.array(energies), np.array(forces)
    return Scan(offsets, work_residual(energies[:-1], energies[1:], forces[:-1], forces[1:], np.diff(offsets)))


def bonds(atoms: Atoms, pairs: list[str] | None) -> list[tuple[int, int]]:
    """The bonds to scan: ``"i-j"`` strings, or every bond to a hydrogen (or, without hydrogens, the
    first atom's nearest neighbour) with ``i`` the heavier atom."""
    if pairs:
        out = []
        for text in pairs:
            try:
                i, j = (int(k) for k in text.split("-"))
            except ValueError:
                raise ConfigError(f"bond {text!r} is not 'i-j' with atom indices") from None
            if not (0 <= i < len(atoms) and 0 <= j < len(atoms)) or i == j:
                raise ConfigError(f"bond {text!r}: indices must be two different atoms of 0..{len(atoms) - 1}")
            out.append((i, j))
        return out
    distances = atoms.get_all_distances()
    np.fill_diagonal(distances, np.inf)
    hydrogens = [k for k in range(len(atoms)) if atoms.numbers[k] == 1]
    if hydrogens:
        return [(int(np.argmin(distances[h])), h) for h in hydrogens]
    return [(0, int(np.argmin(distances[0])))]


def main(args: argparse.Namespace) -> int:
    atoms, name = load_molecule(args.structure)
    calc = MLFFCalculator(args.potential, device=args.device, dtype=args.dtype)
    reference = reference_calculator(args.reference)
    print(f"mlff bench smoothness: {args.potential} ({args.dtype or 'stored dtype'}) against {args.reference} on "
          f"{name}; offsets {args.start:+g}..{args.stop:+g} Å in steps of {args.step:g} Å")
    print(f"  {'bond':<10} {'potential: max residual':>24} {'at':>8} {'|E3|':>10} | {'reference':>10} {'at':>8} "
          f"{'|E3|':>10} | ratio")
    ratios = []
    with serial_openmp():
        for i, j in bonds(atoms, args.bonds):
            ours = bond_scan(calc, atoms, i, j, args.start, args.stop, args.step)
            theirs = bond_scan(reference, atoms, i, j, args.start, args.stop, args.step)
            label = f"{atoms.get_chemical_symbols()[i]}{i}-{atoms.get_chemical_symbols()[j]}{j}"
            (r, at), (r_ref, at_ref) = ours.worst, theirs.worst
            ratios.append(r / r_ref)
            print(f"  {label:<10} {r * 1e3:20.3g} meV {at:+7.2f}Å {ours.third_derivative:10.3g} | "
                  f"{r_ref * 1e3:6.3g} meV {at_ref:+7.2f}Å {theirs.third_derivative:10.3g} | {ratios[-1]:.2f}x")
    print(f"  largest ratio {max(ratios):.2f}x (goal: within 3x); |E3| in eV/Å³ from 12 r / h³")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--potential", default="ethanol-xtb", help="checkpoint path or shipped potential name")
    parser.add_argument("--structure", default="ethanol", help="molecule name or structure file (first frame)")
    parser.add_argument("--reference", choices=["xtb", "emt"], default="xtb", help="the method to compare with")
    parser.add_argument("--bonds", nargs="*", help="bonds as i-j (default: every bond to a hydrogen)")
    parser.add_argument("--start", type=float, default=-0.2, help="first offset along the bond, Å")
    parser.add_argument("--stop", type=float, default=0.6, help="last offset along the bond, Å")
    parser.add_argument("--step", type=float, default=0.01, help="step, Å")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                        help="the potential's dtype (float64 keeps round-off out of the residual)")
