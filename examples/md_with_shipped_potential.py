"""NVE molecular dynamics of ethanol with the shipped ethanol-xtb potential, in plain ASE.

    python examples/md_with_shipped_potential.py [steps]
"""

import sys

import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from mlff import MLFFCalculator
from mlff.compat import thermalize_momenta  # ASE's Maxwell-Boltzmann draw, under either of its names
from mlff.data.generate import load_molecule

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
atoms, _ = load_molecule("ethanol")
atoms.calc = MLFFCalculator("ethanol-xtb", device="auto")
thermalize_momenta(atoms, temperature_K=500, rng=np.random.default_rng(0))
Stationary(atoms)
ZeroRotation(atoms)

energies = []
dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=10)
dyn.run(steps)
spread = (max(energies) - min(energies)) / len(atoms) * 1000
print(f"{steps} steps ({0.5 * steps / 1000:.2f} ps): total energy within a {spread:.4f} meV/atom band, "
      f"T = {atoms.get_temperature():.0f} K")
