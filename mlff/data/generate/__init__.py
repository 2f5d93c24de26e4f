"""Reference-data generation: MD17-style molecules under GFN2-xTB, OC20-style slabs and bulk metals under EMT.

Generators return iterators of labelled ``ase.Atoms`` (labels in a SinglePointCalculator, metadata
in ``atoms.info``: method, system, seed, source ``"md"``/``"relax"``, step, temperature or path);
:func:`write_frames` streams them atomically into an extxyz file. Same arguments and seed, same
frames and byte-identical files (on one machine and software stack).
"""

from mlff.data.generate.bulk import iter_bulk
from mlff.data.generate.common import write_frames
from mlff.data.generate.md17 import generate_md17, iter_md17
from mlff.data.generate.molecules import MOLECULES, load_molecule
from mlff.data.generate.oc20 import (
    ADSORBATES,
    FACETS,
    METALS,
    build_slab,
    emt_lattice_constant,
    generate_oc20,
    iter_oc20,
)

__all__ = [
    "ADSORBATES",
    "FACETS",
    "METALS",
    "MOLECULES",
    "build_slab",
    "emt_lattice_constant",
    "generate_md17",
    "generate_oc20",
    "iter_bulk",
    "iter_md17",
    "iter_oc20",
    "load_molecule",
    "write_frames",
]
