"""Starting geometries for MD17-style generation: built-in names, ASE g2 names, or xyz files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ase import Atoms
from ase.build import molecule as ase_molecule
from ase.collections import g2
from ase.io import read

from mlff.errors import DataError

# MD17 name -> ASE g2 name; the other MD17 molecules ship as mlff/data/molecules/<name>.xyz.
G2_ALIASES = {"ethanol": "CH3CH2OH", "benzene": "C6H6"}
SHIPPED = ("aspirin", "malonaldehyde", "naphthalene", "salicylic_acid", "toluene", "uracil")
MOLECULES = tuple(sorted((*G2_ALIASES, *SHIPPED)))
_FILE_SUFFIXES = {".xyz", ".extxyz", ".traj", ".pdb", ".cif", ".json", ".db"}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def load_molecule(spec: str | Path) -> tuple[Atoms, str]:
    """Resolve ``spec`` to ``(atoms, name)``: a fresh, unlabelled, non-periodic structure.

    ``spec`` is, in this order, an MD17 molecule name (case-insensitive; ``salicylic-acid`` and
    ``salicylic_acid`` both work), any :func:`ase.build.molecule` name (``"H2O"``, ``"CH3CH2OH"``),
    or a path to a structure file (the first frame is used, named after the file's stem).

    Raises :class:`FileNotFoundError` for a path that does not exist and
    :class:`~mlff.errors.DataError` for a name that is none of these.
    """
    text = str(spec)
    key = _normalise(text)
    if key in G2_ALIASES:
        atoms = ase_molecule(G2_ALIASES[key])
    elif key in SHIPPED:
        with resources.as_file(resources.files("mlff.data") / "molecules" / f"{key}.xyz") as path:
            atoms = read(path, format="extxyz")
    elif text in g2.names:
        atoms, key = ase_molecule(text), text
    else:
        path = Path(text)
        if path.is_file():
            atoms, key = read(path, index=0), path.stem
        elif path.suffix.lower() in _FILE_SUFFIXES or len(path.parts) > 1:
            raise FileNotFoundError(2, "No such file or directory", text)
        else:
            raise DataError(
                f"unknown molecule {text!r}: use one of {', '.join(MOLECULES)}, "
                "an ase.build.molecule name (e.g. H2O, CH4), or a path to an xyz file"
            )
    return Atoms(numbers=atoms.numbers, positions=atoms.positions), key
