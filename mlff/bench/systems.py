"""The structures the speed benchmarks time, built the same way by every benchmark."""

from __future__ import annotations

from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule

from mlff.data.generate.molecules import load_molecule


def copper(atoms: int) -> Atoms:
    """A periodic fcc Cu cell with about ``atoms`` atoms (cubic repeats of the 4-atom cell)."""
    n = max(1, round((atoms / 4) ** (1 / 3)))
    return bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)


def copper_slab_with_co() -> Atoms:
    """Cu(111), 4x4x6, with CO on top: 98 atoms, periodic in x and y."""
    slab = fcc111("Cu", (4, 4, 6), vacuum=8.0, a=3.61)
    add_adsorbate(slab, molecule("CO"), 1.9, "ontop", mol_index=1)
    return slab


#: named systems and the preset each is timed with
NAMED = {
    "ethanol": ("small", lambda: load_molecule("ethanol")[0]),
    "aspirin": ("small", lambda: load_molecule("aspirin")[0]),
    "cu32": ("31m", lambda: copper(32)),
    "cu-slab-co": ("31m", copper_slab_with_co),
}
