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


def co_on_cu111(size: tuple[int, int, int] = (2, 2, 3), a: float | None = 3.6, vacuum: float = 6.0,
                height: float = 1.9) -> Atoms:
    """CO upright on top of a surface atom of a Cu(111) slab (ASE's ``fcc111``, lattice constant ``a``;
    None: ASE's), C down, ``height`` Å above the surface, O 1.15 Å above C; periodic in x and y.

    ASE's ``molecule("CO")`` lists O first, so ``add_adsorbate`` without ``mol_index=1`` puts O at the
    site and buries C 0.75 Å above the Cu atom: the one place this is written down."""
    slab = fcc111("Cu", size, vacuum=vacuum, a=a)
    add_adsorbate(slab, molecule("CO"), height, "ontop", mol_index=1)
    return slab


def slab_with_co(seed: int = 0) -> Atoms:
    """A 2x2x3 Cu(111) slab with CO on top, periodic in x and y (12 + 2 atoms)."""
    slab = co_on_cu111(vacuum=5.0)
    slab.center(vacuum=5.0, axis=2)
    slab.rattle(0.05, seed=seed)
    return slab


SYSTEMS = {"ethanol": ethanol, "slab_with_co": slab_with_co}
