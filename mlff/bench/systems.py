"""The structures the speed benchmarks time, built the same way by every benchmark."""

from __future__ import annotations

from ase import Atoms
from ase.build import bulk

from mlff.data.generate.molecules import load_molecule
from mlff.testing.structures import co_on_cu111


def copper(atoms: int) -> Atoms:
    """A periodic fcc Cu cell with about ``atoms`` atoms (cubic repeats of the 4-atom cell)."""
    n = max(1, round((atoms / 4) ** (1 / 3)))
    return bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, n)


def copper_slab_with_co() -> Atoms:
    """Cu(111), 4x4x6, with CO on top: 98 atoms, periodic in x and y."""
    return co_on_cu111((4, 4, 6), a=3.61, vacuum=8.0)


#: named systems and the preset each is timed with
NAMED = {
    "ethanol": ("small", lambda: load_molecule("ethanol")[0]),
    "aspirin": ("small", lambda: load_molecule("aspirin")[0]),
    "cu32": ("31m", lambda: copper(32)),
    "cu-slab-co": ("31m", copper_slab_with_co),
}
