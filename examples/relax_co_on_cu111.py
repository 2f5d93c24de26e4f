"""Relax CO on a Cu(111) slab with the shipped co-cu111-emt potential and compare with EMT itself.

    python examples/relax_co_on_cu111.py
"""

from ase.calculators.emt import EMT
from ase.optimize import BFGS

from mlff import MLFFCalculator
from mlff.data.generate import build_slab

slab, name = build_slab("Cu", "111", "CO")
results = {}
for label, calc in (("co-cu111-emt", MLFFCalculator("co-cu111-emt")), ("EMT", EMT())):
    atoms = slab.copy()
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=200)
    c, o = atoms.positions[-2], atoms.positions[-1]
    surface = atoms.positions[: len(atoms) - 2, 2].max()
    results[label] = (atoms.get_potential_energy(), c[2] - surface, ((o - c) ** 2).sum() ** 0.5)
for label, (energy, height, bond) in results.items():
    print(f"{label:>13}: {name} relaxed, E = {energy:9.4f} eV, C above the top layer {height:.3f} Å, C-O {bond:.3f} Å")
