"""Small structures the model checks run on: a molecule and a periodic slab with an adsorbate."""

from __future__ import annotations

from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule

#: elements of the check structures (a model under test must know them)
SPECIES = [1, 6, 8, 29]
#: reference energies (eV) the checks give the model, far from zero so that E0 handling is exercised
E0 = {1: -13.6, 6: -1029.5, 8: -2041.3, 29: -1.7}
#: cutoff (Å) of the networks built for the checks
CUTOFF = 4.0


def ethanol(seed: int = 0) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.1, seed=seed)
    return atoms


def slab_with_co(seed: int = 0) -> Atoms:
    """A 2x2x3 Cu(111) slab with CO on top, periodic in x and y (12 + 2 atoms)."""
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0, a=3.6)
    add_adsorbate(slab, molecule("CO"), 1.9, "ontop", mol_index=1)
    slab.center(vacuum=5.0, axis=2)
    slab.rattle(0.05, seed=seed)
    return slab


SYSTEMS = {"ethanol": ethanol, "slab_with_co": slab_with_co}
